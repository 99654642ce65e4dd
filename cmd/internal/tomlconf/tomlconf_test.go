package tomlconf

import (
	"strings"
	"testing"
	"time"

	"github.com/BurntSushi/toml"
	"github.com/stretchr/testify/require"
)

type testExamples struct{}

func (testExamples) DurationExamples() string { return `"5s" or "720h"` }

type testConfig struct {
	ID    string                            `toml:"id"`
	Wait  Duration[testExamples]            `toml:"wait"`
	Table struct{ N int }                   `toml:"t"`
	List  []struct{ Name string }           `toml:"list"`
	Map   map[string]Duration[testExamples] `toml:"m"`
}

func TestFindKeyLine(t *testing.T) {
	src := []byte("a = 1\n# c\n[t]\nb = 2\n  c.d = 3\n[t.e]\n\"f\" = 4\n[[arr]]\ng = 5\n[ 'q' . \"r\" ]\n")
	for key, want := range map[string]int{
		"a": 1, "t": 3, "t.b": 4, "t.c.d": 5, "t.e": 6, "t.e.f": 7,
		"arr": 8, "arr.g": 9, "q.r": 10,
		"t.x": 0, "b": 0, "c": 0, "": 0,
	} {
		require.Equal(t, want, FindKeyLine(src, key), key)
	}
}

func TestDecode(t *testing.T) {
	for _, tc := range []struct {
		name, path, src string
		want            string // "" = no error
	}{
		{"valid", "/etc/smartbox/c.toml", "id = \"x\"\nwait = \"250ms\"\n", ""},
		{"syntax at the end of a line points at that line", "/etc/smartbox/c.toml", "id = \"x\"\n\n[t\nN = 1\n", "c.toml:3: "},
		{"wrong type", "c.toml", "id = 7\n", "c.toml:1: id: incompatible types: TOML value has type int64; destination has type string"},
		{"an unknown key is not an error of Decode", "c.toml", "[t]\nN = 1\nwait = \"5 seconds\"\n", ""}, // t.wait: see UnknownKey
		{"bad duration", "c.toml", "wait = \"5 seconds\"\n",
			`c.toml:1: wait: "5 seconds" is not a duration: write it as a string with a unit, e.g. "5s" or "720h"`},
		{"bare number duration", "dir/c.toml", "id = \"x\"\nwait = 5\n",
			`c.toml:2: wait: "5" is not a duration: write it as a string with a unit, e.g. "5s" or "720h"`},
		{"bad duration in a map", "c.toml", "[m]\nk = \"soon\"\n", `c.toml:2: m.k: "soon" is not a duration`},
		{"no path", "", "id = 7\n", "config:1: id: incompatible types"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var c testConfig
			_, err := File{Path: tc.path, Src: []byte(tc.src)}.Decode(&c)
			if tc.want == "" {
				require.NoError(t, err)
				return
			}
			require.Error(t, err)
			require.True(t, strings.HasPrefix(err.Error(), tc.want), "got %q\nwant prefix %q", err, tc.want)
		})
	}
}

func TestDecodeDuration(t *testing.T) {
	var c testConfig
	_, err := File{Src: []byte("wait = \"1h30m\"\n[m]\na = \"250ms\"\n")}.Decode(&c)
	require.NoError(t, err)
	require.Equal(t, 90*time.Minute, c.Wait.Duration)
	require.Equal(t, 250*time.Millisecond, c.Map["a"].Duration)

	var b strings.Builder
	require.NoError(t, toml.NewEncoder(&b).Encode(struct {
		Wait Duration[testExamples] `toml:"wait"`
	}{c.Wait}))
	require.Equal(t, "wait = \"1h30m0s\"\n", b.String(), "written back as a string that reads back the same")
}

func TestUnknownKey(t *testing.T) {
	for _, tc := range []struct {
		name, src, want string
	}{
		{"none", "id = \"x\"\n[t]\nN = 2\n", ""},
		{"misspelt key in a table", "id = \"x\"\n[t]\nN = 2\nM = 3\n", "c.toml:4: t.M: unknown key (misspelt, or not in this version of prog)"},
		{"unknown table", "[tt]\nN = 2\n", "c.toml:1: tt: unknown key (misspelt, or not in this version of prog)"},
		{"unknown dotted key", "t.x.y = 1\n", "c.toml:1: t.x.y: unknown key (misspelt, or not in this version of prog)"},
		{"key under an array of tables", "[[list]]\nName = \"a\"\nnope = 1\n", "c.toml:3: list.nope: unknown key (misspelt, or not in this version of prog)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := File{Path: "/etc/c.toml", Src: []byte(tc.src)}
			var c testConfig
			md, err := f.Decode(&c)
			require.NoError(t, err)
			err = f.UnknownKey(md, "prog")
			if tc.want == "" {
				require.NoError(t, err)
				return
			}
			require.EqualError(t, err, tc.want)
		})
	}
}

func TestFieldErr(t *testing.T) {
	src := []byte("id = \"x\"\n[t]\nN = 2\n")
	for _, tc := range []struct {
		name, path, field, want string
	}{
		{"written field has its line", "/etc/smartbox/c.toml", "t.N", "c.toml:3: t.N: 2 is too many"},
		{"table header", "c.toml", "t", "c.toml:2: t: 2 is too many"},
		{"default has no line", "c.toml", "wait", "c.toml: wait: 2 is too many"},
		{"no path", "", "id", "config:1: id: 2 is too many"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.EqualError(t, File{Path: tc.path, Src: src}.FieldErr(tc.field, "%d is too many", 2), tc.want)
		})
	}
}

// FuzzDecode: any bytes give a config or an error that names the file,
// never a panic; every undecoded key makes an error naming it.
func FuzzDecode(f *testing.F) {
	for _, s := range []string{
		"id = \"x\"\nwait = \"5s\"\n", "[t\n", "wait = 5\n", "[[list]]\nName = 1\n", "t.x.y = 1\n", "[m]\nk = \"1h\"\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, src []byte) {
		file := File{Path: "f.toml", Src: src}
		var c testConfig
		md, err := file.Decode(&c)
		if err != nil {
			require.True(t, strings.HasPrefix(err.Error(), "f.toml"), err.Error())
			return
		}
		if und := md.Undecoded(); len(und) > 0 {
			err := file.UnknownKey(md, "prog")
			require.Error(t, err)
			require.Contains(t, err.Error(), und[0].String())
		}
	})
}
