package firmware

import (
	"archive/tar"
	"compress/gzip"
	"fmt"
	"io"
	"os"
	"strings"
)

// writeTarball writes es as a gzipped tar rooted at / ("./usr/bin/..."),
// owned by root with the package's modes and times: `tar -C / -xzf` puts
// the files where the deb does (the postinst's user and groups are then
// the installer's to make).
func writeTarball(w io.Writer, s Stamp, es []entry, staged map[string]string) error {
	zw, err := gzip.NewWriterLevel(w, gzip.BestCompression)
	if err != nil {
		return err
	}
	tw := tar.NewWriter(zw)
	dirs := map[string]bool{}
	hdr := func(name string, mode int64, typ byte, size int64) *tar.Header {
		return &tar.Header{Name: name, Mode: mode, Typeflag: typ, Size: size, ModTime: s.BuildTime,
			Uname: "root", Gname: "root", Format: tar.FormatPAX}
	}
	// Parents first, as tar wants them (0755, as dpkg makes them).
	parents := func(dest string) error {
		parts := strings.Split(strings.Trim(dest, "/"), "/")
		for i := 1; i < len(parts); i++ {
			d := "./" + strings.Join(parts[:i], "/") + "/"
			if dirs[d] {
				continue
			}
			dirs[d] = true
			if err := tw.WriteHeader(hdr(d, 0o755, tar.TypeDir, 0)); err != nil {
				return err
			}
		}
		return nil
	}
	for _, e := range es {
		if err := parents(e.Dest); err != nil {
			return fmt.Errorf("tarball: %w", err)
		}
		name := "." + e.Dest
		if e.Dir {
			dirs[name+"/"] = true
			if err := tw.WriteHeader(hdr(name+"/", int64(e.Mode), tar.TypeDir, 0)); err != nil {
				return fmt.Errorf("tarball: %s: %w", e.Dest, err)
			}
			continue
		}
		body := e.Body
		if body == nil {
			if body, err = os.ReadFile(staged[e.Dest]); err != nil {
				return fmt.Errorf("tarball: %w", err)
			}
		}
		if err := tw.WriteHeader(hdr(name, int64(e.Mode), tar.TypeReg, int64(len(body)))); err != nil {
			return fmt.Errorf("tarball: %s: %w", e.Dest, err)
		}
		if _, err := tw.Write(body); err != nil {
			return fmt.Errorf("tarball: %s: %w", e.Dest, err)
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return zw.Close()
}
