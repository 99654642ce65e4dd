package store

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/smartbox-oss/smartbox/box"
)

// MaxImportSize bounds an import file. 64 MiB holds several hundred thousand
// grants, far more than a box has, and a box with 512 MB of RAM survives
// reading it.
const MaxImportSize = 64 << 20

type importFile struct {
	Keys   []box.Key      `json:"keys"`
	Grants []box.GrantPut `json:"grants"`
}

// ParseImport reads an import file, JSON {"keys":[...], "grants":[...]},
// strictly: unknown fields, trailing data and invalid records are errors
// that name the record (e.g. `grants[3] (id "g-17"): ...`). slots is the
// box's slot count (0: not checked). A booking or driver_code grant must
// carry a code unless revoked. The result is a Batch with revisions 0,0 (an
// import: the store's revision goes up by one) and fob UIDs normalised;
// grants without a Source get "import".
func ParseImport(r io.Reader, slots int) (Batch, error) {
	data, err := io.ReadAll(io.LimitReader(r, MaxImportSize+1))
	if err != nil {
		return Batch{}, fmt.Errorf("store: import: reading: %w", err)
	}
	if len(data) > MaxImportSize {
		return Batch{}, fmt.Errorf("store: import: larger than %d MiB", MaxImportSize>>20)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var f importFile
	if err := dec.Decode(&f); err != nil {
		return Batch{}, fmt.Errorf("store: import: %w", describeJSONError(data, err))
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return Batch{}, fmt.Errorf("store: import: unexpected data after the JSON object at byte %d", dec.InputOffset())
	}

	b := Batch{Keys: make([]box.Key, 0, len(f.Keys)), Grants: make([]box.GrantPut, 0, len(f.Grants))}
	keyAt := make(map[string]int, len(f.Keys))
	fobAt := make(map[string]int, len(f.Keys))
	for i, k := range f.Keys {
		k, err := k.Normalized(slots)
		if err != nil {
			return Batch{}, fmt.Errorf("store: import: keys[%d] (id %q): %w", i, k.ID, err)
		}
		if j, dup := keyAt[k.ID]; dup {
			return Batch{}, fmt.Errorf("store: import: keys[%d] (id %q): %w: duplicate id, first at keys[%d]", i, k.ID, box.ErrInvalidRecord, j)
		}
		if j, dup := fobAt[k.FobUID]; dup {
			return Batch{}, fmt.Errorf("store: import: keys[%d] (id %q): %w: fob %s is also keys[%d] (id %q)", i, k.ID, box.ErrInvalidRecord, k.FobUID, j, f.Keys[j].ID)
		}
		keyAt[k.ID], fobAt[k.FobUID] = i, i
		b.Keys = append(b.Keys, k)
	}
	grantAt := make(map[string]int, len(f.Grants))
	for i, g := range f.Grants {
		if err := g.Validate(); err != nil {
			return Batch{}, fmt.Errorf("store: import: grants[%d] (id %q): %w", i, g.ID, err)
		}
		// An import holds the whole record: a grant without a code could
		// never be used, unless it is revoked and opens nothing anyway.
		if g.Code == "" && !g.Revoked {
			return Batch{}, fmt.Errorf("store: import: grants[%d] (id %q): %w: grant %s: a %s grant needs a code unless revoked", i, g.ID, box.ErrInvalidRecord, g.ID, g.Kind)
		}
		if j, dup := grantAt[g.ID]; dup {
			return Batch{}, fmt.Errorf("store: import: grants[%d] (id %q): %w: duplicate id, first at grants[%d]", i, g.ID, box.ErrInvalidRecord, j)
		}
		grantAt[g.ID] = i
		if g.Source == "" {
			g.Source = "import"
		}
		b.Grants = append(b.Grants, g)
	}
	return b, nil
}

// describeJSONError adds the line and column to a decoding error: people
// edit import files by hand.
func describeJSONError(data []byte, err error) error {
	var off int64 = -1
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		off = se.Offset
	case errors.As(err, &te):
		off = te.Offset
	}
	if off <= 0 || off > int64(len(data)) {
		return err
	}
	// Offset counts the bytes read, the offending one included.
	p := off - 1
	line := 1 + bytes.Count(data[:p], []byte{'\n'})
	col := p - int64(bytes.LastIndexByte(data[:p], '\n'))
	return fmt.Errorf("line %d, column %d: %w", line, col, err)
}
