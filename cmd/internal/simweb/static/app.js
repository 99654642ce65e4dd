// The simulator's page. Everything drawn comes from one State sent by
// /api/stream (at once, then after each change); actions are JSON calls
// whose effect comes back through the stream. Strings from the state come
// from outside (driver names, mail bodies): the DOM is built with
// textContent only, never innerHTML.
'use strict';

const SECURITY_EVENTS = new Set(['sync_refused', 'keypad_attack', 'slot_unexpected', 'hardware_fault', 'lockout']);
const FIELDS = {
  code: 'keycafe_access_code',
  link: 'keycafe_access_link',
  instructions: 'keycafe_access_instructions',
};
const TOAST_MS = 5000; // how long an action's error stays up
const RETRY_MS = 2000; // before reconnecting a refused stream (503: too many tabs)

let state = null;     // the latest State
let boxID = location.hash.slice(1); // the selected box ("" = the first)
let source = null;    // the EventSource
let keyQueue = Promise.resolve(); // keypad presses go one after another

const $ = (sel) => document.querySelector(sel);

// el makes an element: attrs are properties (className, type...) or data-*
// / aria-* attributes; children are nodes or strings (text).
function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('data-') || k.startsWith('aria-') || k === 'title' || k === 'colspan') e.setAttribute(k, String(v));
    else if (k === 'onclick') e.addEventListener('click', v);
    else e[k] = v;
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

function fmtTime(t) {
  if (!t) return '-';
  const d = new Date(t);
  if (isNaN(d)) return '-';
  return d.toLocaleTimeString([], {hour: '2-digit', minute: '2-digit', second: '2-digit', hour12: false});
}
function fmtWhen(t) {
  if (!t) return 'open';
  const d = new Date(t);
  if (isNaN(d) || d.getFullYear() < 1900) return 'open';
  return d.toLocaleString([], {month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit', hour12: false});
}
function hhmm(t) {
  const d = new Date(t);
  return d.toLocaleTimeString([], {hour: '2-digit', minute: '2-digit', hour12: false});
}
function localInput(t) { // a time as a datetime-local value
  if (!t) return '';
  const d = new Date(t);
  const p = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}`;
}
function isoTime(t) {
  const d = new Date(t);
  return isNaN(d) ? String(t) : d.toISOString().replace(/\.\d{3}Z$/, 'Z');
}
function fromInput(v) { return v ? new Date(v).toISOString() : undefined; }

function toast(msg, bad) {
  const t = $('#toast');
  t.textContent = msg;
  t.dataset.bad = bad ? 'true' : 'false';
  t.hidden = false;
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => { t.hidden = true; }, TOAST_MS);
}

// call makes one API request; an error answer shows as a toast and rejects.
async function call(method, path, body) {
  const opts = {method, headers: {}};
  if (body !== undefined) {
    opts.headers['Content-Type'] = 'application/json';
    opts.body = JSON.stringify(body);
  }
  let res;
  try {
    res = await fetch(path, opts);
  } catch (e) {
    toast(`${method} ${path}: ${e.message}`, true);
    throw e;
  }
  const data = await res.json().catch(() => ({}));
  if (!res.ok) {
    const msg = data.error || res.statusText;
    toast(msg, true);
    throw new Error(msg);
  }
  return data;
}
// runSelftest runs smartboxctl selftest on the box shown (it takes a
// while: every lock, every key) and shows its table.
async function runSelftest() {
  const btn = $('#selftest');
  const verdict = $('#selftest-verdict');
  const box = state.box;
  btn.disabled = true;
  verdict.textContent = `running on ${box}...`;
  try {
    const run = await call('POST', boxPath('/selftest'), {});
    const body = $('#selftest-rows tbody');
    body.replaceChildren(...run.report.rows.map((r) => el('tr', {'data-result': r.result},
      el('td', {}, r.group), el('td', {}, r.name), el('td', {className: 'result'}, r.result.toUpperCase()), el('td', {}, r.detail || '-'))));
    $('#selftest-rows').hidden = false;
    verdict.textContent = `${box}: ${run.report.passed ? 'PASSED' : 'FAILED'} (exit status ${run.exit_code})` +
      (run.report.error ? `, stopped: ${run.report.error}` : '');
  } catch (e) {
    verdict.textContent = `${box}: ${e.message}`;
  } finally {
    btn.disabled = false;
  }
}
const boxPath = (rest) => `/api/boxes/${encodeURIComponent(state.box)}${rest}`;
const quiet = (p) => p.catch(() => {}); // the toast already said it

function current() { return state && state.boxes.find((b) => b.id === state.box); }
// down: the box's process is not running (exited, or its power is off):
// nothing can be typed, taken or read; only power and network faults apply.
function down(b) { return !!b && (b.process === 'exited' || b.power === 'off'); }
// showOlder fills the line under a bounded list (#<list>-older): how many
// older entries the server left out (State.omitted).
function showOlder(list) {
  const n = (state.omitted && state.omitted[list]) || 0;
  const p = $(`#${list}-older`);
  p.textContent = n > 0 ? `${n} older not shown` : '';
  p.hidden = n === 0;
}

// ---- the stream ----

function connect() {
  if (source) source.close();
  const conn = $('#conn');
  conn.dataset.state = 'connecting';
  conn.textContent = 'connecting…';
  source = new EventSource('/api/stream' + (boxID ? '?box=' + encodeURIComponent(boxID) : ''));
  source.onopen = () => { conn.dataset.state = 'live'; conn.textContent = 'live'; };
  source.onmessage = (m) => {
    conn.dataset.state = 'live';
    conn.textContent = 'live';
    try {
      state = JSON.parse(m.data);
    } catch (e) {
      toast('bad state from the stream: ' + e.message, true);
      return;
    }
    render();
  };
  source.addEventListener('gone', () => { boxID = ''; location.hash = ''; connect(); });
  // EventSource reconnects by itself after a dropped connection; a refused
  // one (404 for a box that is gone, 503 when full) closes it, so retry.
  source.onerror = () => {
    conn.dataset.state = 'down';
    conn.textContent = 'reconnecting…';
    if (source.readyState === EventSource.CLOSED) {
      // Refused: most likely a box id (from the URL) that is not here.
      if (boxID && (!state || !state.boxes.some((b) => b.id === boxID))) {
        boxID = '';
        location.hash = '';
      }
      setTimeout(connect, RETRY_MS);
    }
  };
}

function select(id) {
  if (id === boxID) return;
  boxID = id;
  location.hash = id;
  connect();
}

// ---- rendering ----

// drawn remembers what each part was last drawn from: a part whose input
// did not change is left alone, so a button under the mouse is not
// replaced by an equal one between mousedown and mouseup.
const drawn = {};
function part(name, input, draw) {
  const key = JSON.stringify(input);
  if (drawn[name] === key) return;
  drawn[name] = key;
  draw();
}

function render() {
  const b = current();
  part('errors', state.errors, renderErrors);
  part('boxes', [state.box, state.boxes.map((x) => [x.id, x.name, x.process, x.power, x.exit, x.state && x.state.status.cloud, x.state && x.state.status.revision, x.state && x.state.status.outbox])], renderBoxes);
  part('front', [b && b.id, b && b.name, b && b.process, b && b.power, b && b.exit, b && b.keys, b && b.state && b.state.typed, state.events.slice(-20)], () => renderFront(b));
  part('slots', [b && b.state && b.state.slots, down(b)], () => renderSlots(b));
  part('sync', [b && b.state && b.state.status, b && b.network_cut, b && b.network_mode, b && b.process, b && b.power, b && b.pid, b && b.restarts, state.broker_up, state.broker_error], () => renderSync(b));
  renderFaults(b);
  part('events', state.events, renderEvents);
  part('inbox', [state.inbox, state.omitted], renderInbox);
  part('fleetio', [state.fleetio, state.reservations, state.omitted], renderFleetio);
  part('bookings', [state.bookings, state.omitted], renderBookings);
}

function renderErrors() {
  const e = $('#errors');
  e.replaceChildren(...state.errors.map((m) => el('p', {}, m)));
  e.hidden = state.errors.length === 0;
}

function processText(b) {
  if (b.power === 'off') return 'power off';
  return b.process;
}

function renderBoxes() {
  $('#boxes').replaceChildren(...state.boxes.map((b) => {
    const w = b.state;
    const dead = b.process === 'exited';
    return el('li', {
      'data-box': b.id, 'data-process': b.process, 'data-power': b.power,
      'data-selected': b.id === state.box ? 'true' : 'false',
      className: dead ? 'dead' : '',
      onclick: () => select(b.id),
      // Reachable from the keyboard too: Tab to a box, Enter or Space
      // opens it (and is not typed on the keypad).
      tabIndex: 0,
      'aria-current': b.id === state.box ? 'true' : undefined,
      onkeydown: (ev) => {
        if (ev.key !== 'Enter' && ev.key !== ' ') return;
        ev.preventDefault();
        ev.stopPropagation();
        select(b.id);
      },
    },
    el('strong', {}, b.id), ' ', el('span', {className: 'name'}, b.name || ''),
    el('span', {className: 'badge'}, processText(b)),
    w ? el('span', {className: 'badge ' + (w.status.cloud === 'connected' ? 'good' : 'warn')}, w.status.cloud) : null,
    w ? el('span', {className: 'small'}, `rev ${w.status.revision} · outbox ${w.status.outbox}`) : null,
    dead && b.exit ? el('div', {className: 'exit small'}, b.exit) : null);
  }));
}

// outcome is the last thing the box's front told the person, from the
// latest events.
function outcome(events) {
  for (let i = events.length - 1; i >= 0; i--) {
    const e = events[i];
    switch (e.type) {
      case 'slot_released':
        if (e.purpose === 'return') return `Slot ${e.slot} open: put the key back`;
        if (e.purpose === 'remote') return `Slot ${e.slot} opened remotely`;
        return `Slot ${e.slot} open: take the key`;
      case 'key_taken': return `Key taken from slot ${e.slot}`;
      case 'key_returned': return `Key back in slot ${e.slot}`;
      case 'slot_relocked': return `Slot ${e.slot} locked`;
      case 'key_absent': return `Key not in slot ${e.slot || ''}`.trim();
      case 'lockout': return `Locked out until ${hhmm(e.until)}`;
      case 'fob_unknown': return 'Unknown fob';
      case 'return_refused': return 'This slot cannot take the key';
      case 'clock_untrusted': return 'Clock not trusted';
      case 'code_refused':
        switch (e.reason) {
          case 'clock_untrusted': return 'Clock not trusted';
          case 'locked_out': return e.until ? `Locked out until ${hhmm(e.until)}` : 'Locked out';
          case 'not_yet_valid': return 'Code not valid yet';
          case 'expired': return 'Code expired';
          case 'revoked': return 'Code revoked';
          case 'used_up': return 'Code used up';
          case 'too_long': return 'Too many digits';
          case 'no_keys': return 'No key for this code';
          default: return 'Wrong code';
        }
      case 'box_started': return 'Ready';
    }
  }
  return 'Ready';
}

function renderFront(b) {
  $('#box-title').textContent = b ? `${b.id}${b.name ? ' · ' + b.name : ''}` : '(none)';
  const dead = down(b);
  // The box's panels grey out (CSS: [data-down]); the banner and its
  // power-on button stay clear.
  for (const id of ['front', 'slots-panel', 'sync-panel']) $('#' + id).dataset.down = String(dead);
  $('#dead').hidden = !dead;
  $('#dead-exit').textContent = !dead ? '' : b.power === 'off'
    ? 'Box not running: power is off' + (b.exit ? ` (${b.exit})` : '')
    : `Box not running: ${b.exit || b.process}`;
  for (const c of document.querySelectorAll('#keypad button, #reader button, #reader input, #reader select')) c.disabled = dead;
  const typed = b && b.state ? b.state.typed : 0;
  $('#display').dataset.typed = String(typed);
  $('#display-dots').textContent = typed > 0 ? '•'.repeat(typed) : '';
  $('#display-message').textContent = !b ? '' : dead ? 'Off' : outcome(state.events);
  $('#display').dataset.outcome = $('#display-message').textContent;

  // The fob select keeps the chosen fob across redraws.
  const sel = $('#fob-select');
  const keys = (b && b.keys) || [];
  const want = keys.map((k) => `${k.fob_uid}|${k.slot}|${k.name || k.id}`).join(',');
  if (sel.dataset.keys !== want) {
    const was = sel.value;
    sel.replaceChildren(...keys.map((k) => el('option', {value: k.fob_uid}, `Slot ${k.slot}: ${k.name || k.id} (${k.fob_uid})`)));
    if (keys.some((k) => k.fob_uid === was)) sel.value = was;
    sel.dataset.keys = want;
  }
}

function renderSlots(b) {
  const slots = (b && b.state && b.state.slots) || [];
  const dead = down(b);
  $('#slots').replaceChildren(...slots.map((s) => {
    const waits = s.waiting_for ? (s.waiting_for === 'return' ? 'waits for the key' : 'waits for the key to leave') : '';
    let action = null;
    if (s.released) {
      action = s.key_in_slot
        ? el('button', {type: 'button', className: 'take', disabled: dead, onclick: () => quiet(call('POST', boxPath(`/slots/${s.slot}/take`), {}))}, 'Take key')
        : el('button', {type: 'button', className: 'put-back', disabled: dead, onclick: () => quiet(call('POST', boxPath(`/slots/${s.slot}/put-back`), {}))}, 'Put key back');
    }
    return el('div', {
      className: 'slot', 'data-slot': s.slot, 'data-released': String(!!s.released),
      'data-key-present': String(!!s.key_present), 'data-key-in-slot': String(!!s.key_in_slot),
      'data-led': String(!!s.led), 'data-jammed': String(!!s.jammed), 'data-sensor-dead': String(!!s.sensor_dead),
    },
    el('div', {className: 'slot-head'}, el('span', {className: 'num'}, s.slot), el('span', {className: 'led', title: s.led ? 'LED on' : 'LED off'})),
    el('div', {className: 'key-name'}, s.key_name || s.key_id || '(no key)'),
    el('div', {className: 'small'}, s.released ? 'released' : 'locked', ' · ', s.key_present ? 'key in' : 'empty'),
    waits ? el('div', {className: 'small waits'}, waits) : null,
    s.jammed ? el('span', {className: 'badge bad'}, 'jammed') : null,
    s.sensor_dead ? el('span', {className: 'badge bad'}, 'sensor dead') : null,
    action);
  }));
}

// networkText is how the box's network is cut, if it is.
function networkText(b) {
  if (!b.network_cut) return '';
  return b.network_mode === 'blackhole' ? ' (cable pulled)' : ' (network cut)';
}

function renderSync(b) {
  const d = $('#sync-state');
  const w = b && b.state;
  const brokerText = state.broker_up ? 'up' : state.broker_error ? 'down: ' + state.broker_error : 'restarting';
  const broker = [el('dt', {}, 'Broker'), el('dd', {'data-field': 'broker', className: state.broker_up ? '' : 'bad'}, brokerText)];
  if (!w) {
    d.dataset.connected = 'false';
    d.replaceChildren(el('dt', {}, 'State'), el('dd', {}, b ? 'no report from the box yet' : 'no box'), ...broker);
    return;
  }
  const st = w.status;
  d.dataset.connected = String(st.cloud === 'connected');
  d.dataset.clockTrusted = String(!!st.clock_trusted);
  const rows = [
    ['Cloud', st.cloud + networkText(b)],
    ['Revision', st.revision],
    ['Outbox', `${st.outbox} event(s) not acknowledged`],
    ['Clock', `${isoTime(st.clock)} ${st.clock_trusted ? '(trusted)' : '(NOT trusted)'}`],
    ['Lockout', st.lockout_until ? `until ${hhmm(st.lockout_until)} (${st.failures || 0} wrong)` : (st.failures ? `${st.failures} wrong code(s)` : 'none')],
    ['Process', `${processText(b)}${b.pid ? ' pid ' + b.pid : ''} · restarts ${b.restarts}`],
  ];
  d.replaceChildren(...rows.flatMap(([k, v]) => [el('dt', {}, k), el('dd', {'data-field': k.toLowerCase()}, String(v))]), ...broker);
}

function renderFaults(b) {
  const on = !!b;
  // The proxy and the power are the depot's: they work on a dead box too.
  for (const id of ['fault-network', 'fault-blackhole', 'fault-power']) $('#' + id).disabled = !on;
  // These go through the box's own socket: not while it is down.
  for (const id of ['fault-jam', 'fault-sensor', 'clock-plus2h', 'clock-minus2h', 'clock-1970', 'clock-reset', 'fault-forged', 'fault-garbage']) {
    $('#' + id).disabled = !on || down(b);
  }
  // A restart takes the broker away for a moment: not twice at once; after
  // one that failed, the button is how to try again.
  $('#fault-broker').disabled = !state.broker_up && !state.broker_error;
  if (!b) return;
  // Either button restores a cut network, whichever way it was cut.
  for (const [id, mode, label] of [['fault-network', 'reset', 'Cut network'], ['fault-blackhole', 'blackhole', 'Pull the cable']]) {
    const btn = $('#' + id);
    btn.textContent = b.network_cut ? 'Restore network' : label;
    btn.dataset.cut = String(!!b.network_cut);
    btn.dataset.mode = mode;
    btn.dataset.active = String(!!b.network_cut && (b.network_mode || 'reset') === mode);
  }
  const pw = $('#fault-power');
  pw.textContent = b.power === 'off' ? 'Restore power' : 'Pull power';
  pw.dataset.on = String(b.power !== 'off');

  const sel = $('#fault-slot');
  const n = b.slots || (b.state ? b.state.slots.length : 0);
  if (sel.options.length !== n) {
    const was = sel.value;
    sel.replaceChildren(...Array.from({length: n}, (_, i) => el('option', {value: String(i + 1)}, `Slot ${i + 1}`)));
    if (was && Number(was) <= n) sel.value = was;
  }
  const s = b.state && b.state.slots.find((x) => String(x.slot) === sel.value);
  $('#fault-jam').textContent = s && s.jammed ? 'Unjam' : 'Jam';
  $('#fault-jam').dataset.jammed = String(!!(s && s.jammed));
  $('#fault-sensor').textContent = s && s.sensor_dead ? 'Repair sensor' : 'Kill sensor';
  $('#fault-sensor').dataset.dead = String(!!(s && s.sensor_dead));
}

function eventDetail(e) {
  const parts = [];
  if (e.slot) parts.push(`slot ${e.slot}`);
  if (e.key_id) parts.push(`key ${e.key_id}`);
  if (e.grant_id) parts.push(`grant ${e.grant_id}`);
  if (e.fob_uid) parts.push(`fob ${e.fob_uid}`);
  if (e.purpose) parts.push(e.purpose);
  if (e.reason) parts.push(e.reason);
  if (e.until) parts.push(`until ${hhmm(e.until)}`);
  if (e.failures) parts.push(`${e.failures} wrong`);
  if (e.count) parts.push(`×${e.count}`);
  if (e.clock_untrusted) parts.push('clock untrusted');
  if (e.detail) parts.push(e.detail);
  return parts.join(' · ');
}

function renderEvents() {
  const evs = state.events.slice().reverse();
  $('#events').replaceChildren(...evs.map((e) => el('li', {
    'data-type': e.type, 'data-seq': e.seq, className: SECURITY_EVENTS.has(e.type) ? 'security' : '',
  }, el('span', {className: 'time'}, fmtTime(e.time)), ' ', el('strong', {}, e.type), ' ', el('span', {className: 'small'}, eventDetail(e)))));
}

// bodyNodes is a message body as text with its 6-digit PINs in <strong
// class="pin"> and its links clickable; still text nodes only.
function bodyNodes(body) {
  const out = [];
  const re = /(https?:\/\/[^\s<>"']+)|(\b\d{6}\b)/g;
  let at = 0;
  for (const m of body.matchAll(re)) {
    if (m.index > at) out.push(body.slice(at, m.index));
    if (m[1]) out.push(el('a', {href: m[1], target: '_blank', rel: 'noopener noreferrer', className: 'link'}, m[1]));
    else out.push(el('strong', {className: 'pin'}, m[2]));
    at = m.index + m[0].length;
  }
  if (at < body.length) out.push(body.slice(at));
  return out;
}

function renderInbox() {
  showOlder('inbox');
  const msgs = state.inbox.slice().reverse();
  const box = $('#inbox');
  if (msgs.length === 0) {
    box.replaceChildren(el('p', {className: 'small'}, 'Nothing sent yet.'));
    return;
  }
  box.replaceChildren(...msgs.map((m) => el('div', {className: 'message', 'data-channel': m.channel},
    el('div', {className: 'small'}, el('span', {className: 'badge'}, m.channel), ' ', fmtTime(m.at), ' to ', el('span', {className: 'to'}, m.to)),
    m.subject ? el('div', {className: 'subject'}, m.subject) : null,
    el('div', {className: 'body'}, bodyNodes(m.body || '')))));
}

function fieldText(v) { return v === null || v === undefined || v === '' ? '-' : String(v); }

function syncOptions(sel, items, value, label) {
  const want = items.map((i) => `${i.id}:${label(i)}`).join(',');
  if (sel.dataset.items === want) return;
  const was = sel.value;
  sel.replaceChildren(...items.map((i) => el('option', {value: String(value(i))}, label(i))));
  if (items.some((i) => String(value(i)) === was)) sel.value = was;
  sel.dataset.items = want;
}

const contactName = (c) => c.name || `${c.first_name || ''} ${c.last_name || ''}`.trim() || `#${c.id}`;

function renderFleetio() {
  const f = state.fleetio;
  const vname = (id) => { const v = f.vehicles.find((x) => x.id === id); return v ? v.name : `vehicle ${id}`; };
  $('#vehicles tbody').replaceChildren(...f.vehicles.map((v) => el('tr', {'data-id': v.id, 'data-linked': String(!!v.link)},
    el('td', {}, v.name, v.license_plate ? el('span', {className: 'small'}, ' ' + v.license_plate) : null),
    el('td', {}, v.link ? v.link.box_id : '-'),
    el('td', {}, v.link ? v.link.key_id : '-'),
    el('td', {}, v.link ? v.link.method : 'not linked'))));

  const form = $('#assign-form');
  syncOptions(form.elements.vehicle, f.vehicles, (v) => v.id, (v) => v.name);
  syncOptions(form.elements.contact, f.contacts, (c) => c.id, contactName);
  syncOptions($('#assign-edit').elements.contact, f.contacts, (c) => c.id, contactName);

  showOlder('assignments');
  $('#assignments tbody').replaceChildren(...f.assignments.map((a) => {
    const cf = a.custom_fields || {};
    const link = cf[FIELDS.link];
    const flag = a.current ? 'current' : a.future ? 'future' : 'past';
    return el('tr', {'data-id': a.id, 'data-when': flag},
      el('td', {}, a.id),
      el('td', {}, a.vehicle ? a.vehicle.name : vname(a.vehicle_id)),
      el('td', {}, a.contact_full_name || (a.contact && a.contact.name) || `contact ${a.contact_id}`),
      el('td', {}, `${fmtWhen(a.started_at)} – ${fmtWhen(a.ended_at)} `, el('span', {className: 'badge ' + (a.current ? 'good' : '')}, flag)),
      el('td', {className: 'field-code'}, fieldText(cf[FIELDS.code])),
      el('td', {className: 'field-link'}, typeof link === 'string' && /^https?:\/\//.test(link)
        ? el('a', {href: link, title: link, target: '_blank', rel: 'noopener noreferrer'}, link) : fieldText(link)),
      el('td', {className: 'field-instructions'}, fieldText(cf[FIELDS.instructions])),
      el('td', {className: 'actions'},
        el('button', {type: 'button', className: 'edit', onclick: () => editAssignment(a)}, 'Change'),
        el('button', {type: 'button', className: 'end', onclick: () => quiet(call('POST', `/api/fleetio/assignments/${a.id}/end`, {}))}, 'End'),
        el('button', {type: 'button', className: 'delete', onclick: () => quiet(call('DELETE', `/api/fleetio/assignments/${a.id}`))}, 'Delete')));
  }));

  $('#reservations tbody').replaceChildren(...(state.reservations.length === 0
    ? [el('tr', {}, el('td', {colspan: 6, className: 'small'}, 'No reservation waits for the admin.'))]
    : state.reservations.map((r) => el('tr', {'data-id': r.assignment_id, 'data-approved': String(!!r.approved)},
      el('td', {}, r.assignment_id),
      el('td', {}, vname(r.vehicle_id)),
      el('td', {}, r.contact_name || `contact ${r.contact_id}`),
      el('td', {}, `${fmtWhen(r.from)} – ${fmtWhen(r.until)}`),
      el('td', {}, `${r.box_id || '-'} / ${r.key_id || '-'}`),
      el('td', {}, r.approved ? 'booking asked' : el('button', {type: 'button', className: 'book',
        onclick: () => quiet(call('POST', `/api/reservations/${r.assignment_id}/book`, {}).then(() => toast('Booking asked for', false)))}, 'Create booking'))))));
}

function editAssignment(a) {
  const f = $('#assign-edit');
  f.hidden = false;
  f.dataset.id = String(a.id);
  f.querySelector('.edit-id').textContent = String(a.id);
  f.elements.contact.value = String(a.contact_id);
  f.elements.start.value = localInput(a.started_at);
  f.elements.end.value = localInput(a.ended_at);
  f.elements.open.checked = !a.ended_at;
}

function renderBookings() {
  const rows = state.bookings;
  showOlder('bookings');
  $('#bookings tbody').replaceChildren(...(rows.length === 0
    ? [el('tr', {}, el('td', {colspan: 6, className: 'small'}, 'No bookings yet.'))]
    : rows.map((r) => {
      const b = r.booking;
      const status = r.revoked ? 'revoked' : b ? b.state : (r.until && new Date(r.until) < new Date() ? 'expired' : 'active');
      const evs = [...(r.events || []), ...(r.box_events || [])];
      return el('tr', {'data-grant': r.grant_id || '', 'data-status': status},
        el('td', {}, r.box_id || '-'),
        el('td', {className: 'small'}, r.grant_id || '-', r.kind ? ` (${r.kind})` : ''),
        el('td', {}, b ? `${b.vehicle_name || 'vehicle ' + b.vehicle_id} / ${b.contact_name || 'contact ' + b.contact_id}` : (r.driver_ref || '-')),
        el('td', {}, `${fmtWhen(r.from)} – ${fmtWhen(r.until)}`),
        el('td', {}, status),
        el('td', {className: 'booking-events'}, evs.length === 0 ? '-' : evs.map((e) => el('span', {
          className: 'chip' + (e.type === 'overdue' || SECURITY_EVENTS.has(e.type) ? ' bad' : ''), 'data-type': e.type,
          title: fmtTime(e.time) + (e.detail ? ' ' + e.detail : ''),
        }, e.type))));
    })));
}

// ---- actions ----

function press(keys) {
  if (!state || !state.box || down(current())) return;
  const path = boxPath('/keypad');
  keyQueue = keyQueue.then(() => quiet(call('POST', path, {keys})));
}

function wire() {
  $('#keypad').addEventListener('click', (ev) => {
    const b = ev.target.closest('button[data-key]');
    if (b) press(b.dataset.key);
  });
  document.addEventListener('keydown', (ev) => {
    if (ev.ctrlKey || ev.metaKey || ev.altKey) return;
    if (ev.target.closest('input, select, textarea')) return;
    let k = null;
    if (/^[0-9*#]$/.test(ev.key)) k = ev.key;
    else if (ev.key === 'Enter') k = '#';
    else if (ev.key === 'Escape' || ev.key === 'Backspace') k = '*';
    if (k === null) return;
    ev.preventDefault();
    const btn = document.querySelector(`#keypad button[data-key="${k}"]`);
    if (btn) { btn.classList.add('pressed'); setTimeout(() => btn.classList.remove('pressed'), 150); }
    press(k);
  });

  $('#fob-hold').onclick = () => { const v = $('#fob-select').value; if (v) quiet(call('POST', boxPath('/reader'), {fob: v})); };
  $('#fob-uid-hold').onclick = () => { const v = $('#fob-uid').value.trim(); if (v) quiet(call('POST', boxPath('/reader'), {fob: v})); };
  const garbage = () => quiet(call('POST', boxPath('/reader'), {garbage: true}));
  $('#reader-garbage').onclick = garbage;
  $('#fault-garbage').onclick = garbage;
  $('#power-on').onclick = () => quiet(call('PUT', boxPath('/power'), {on: true}));

  // Cut with the button's mode; a cut network is restored by either.
  const network = (ev) => {
    const btn = ev.currentTarget;
    quiet(call('PUT', boxPath('/network'), btn.dataset.cut === 'true' ? {cut: false} : {cut: true, mode: btn.dataset.mode}));
  };
  $('#fault-network').onclick = network;
  $('#fault-blackhole').onclick = network;
  $('#fault-power').onclick = (ev) => quiet(call('PUT', boxPath('/power'), {on: ev.currentTarget.dataset.on !== 'true'}));
  $('#fault-broker').onclick = () => quiet(call('POST', '/api/broker/restart', {}).then(() => toast('Broker restarted', false)));
  $('#fault-slot').onchange = () => renderFaults(current());
  $('#fault-jam').onclick = (ev) => quiet(call('PUT', boxPath(`/slots/${$('#fault-slot').value}/fault`), {jammed: ev.currentTarget.dataset.jammed !== 'true'}));
  $('#fault-sensor').onclick = (ev) => quiet(call('PUT', boxPath(`/slots/${$('#fault-slot').value}/fault`), {sensor_dead: ev.currentTarget.dataset.dead !== 'true'}));
  $('#clock-plus2h').onclick = () => quiet(call('PUT', boxPath('/clock'), {offset: '2h'}));
  $('#clock-minus2h').onclick = () => quiet(call('PUT', boxPath('/clock'), {offset: '-2h'}));
  $('#clock-1970').onclick = () => quiet(call('PUT', boxPath('/clock'), {at: '1970-01-01T00:00:00Z'}));
  $('#clock-reset').onclick = () => quiet(call('PUT', boxPath('/clock'), {reset: true}));
  $('#fault-forged').onclick = () => quiet(call('POST', boxPath('/forged-grant'), {}).then(() => toast('Forged grant sent', false)));
  $('#selftest').onclick = runSelftest;

  $('#assign-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const f = ev.currentTarget.elements;
    const body = {vehicle_id: Number(f.vehicle.value), contact_id: Number(f.contact.value)};
    const start = fromInput(f.start.value);
    const end = fromInput(f.end.value);
    if (start) body.started_at = start;
    if (end) body.ended_at = end;
    quiet(call('POST', '/api/fleetio/assignments', body).then((a) => toast(`Assignment ${a.id} created`, false)));
  });
  const edit = $('#assign-edit');
  edit.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const f = edit.elements;
    const body = {contact_id: Number(f.contact.value)};
    const start = fromInput(f.start.value);
    if (start) body.started_at = start;
    if (f.open.checked) body.ended_at = null;
    else if (f.end.value) body.ended_at = fromInput(f.end.value);
    quiet(call('PATCH', `/api/fleetio/assignments/${edit.dataset.id}`, body).then(() => { edit.hidden = true; }));
  });
  edit.querySelector('.cancel').onclick = () => { edit.hidden = true; };
}

wire();
connect();
