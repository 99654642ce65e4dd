package boxconfig

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/smartbox-oss/smartbox/sync/brokertest"
)

const simBase = "box_id = \"box-7\"\n[hardware]\nprofile = \"sim\"\n"

func TestCloudConfig(t *testing.T) {
	for _, tc := range []struct {
		name  string
		cloud string
		want  []string // nil: valid
		check func(t *testing.T, c *Config)
	}{
		{"no [cloud] is an offline box", "", nil, func(t *testing.T, c *Config) { require.Nil(t, c.Cloud) }},
		{"password", "broker_url = \"ssl://mqtt.example.com:8883\"\npassword_file = \"pw\"\n", nil, func(t *testing.T, c *Config) {
			require.Equal(t, "box-7", c.Cloud.Username, "username defaults to the box id")
		}},
		// A password over plain MQTT only to this machine, unless insecure.
		{"password over tcp to 127.0.0.1", "broker_url = \"tcp://127.0.0.1:1883\"\npassword_file = \"pw\"\n", nil, nil},
		{"password over tcp to 127.0.0.2", "broker_url = \"tcp://127.0.0.2:1883\"\npassword_file = \"pw\"\n", nil, nil},
		{"password over tcp to localhost", "broker_url = \"tcp://localhost:1883\"\npassword_file = \"pw\"\n", nil, nil},
		{"password over tcp to ::1", "broker_url = \"tcp://[::1]:1883\"\npassword_file = \"pw\"\n", nil, nil},
		{"password over tcp to 10.0.0.5", "broker_url = \"tcp://10.0.0.5:1883\"\npassword_file = \"pw\"\n",
			[]string{"smartboxd.toml:5: cloud.broker_url: \"tcp://10.0.0.5:1883\" would send the box's password in clear to 10.0.0.5",
				"cloud.insecure = true", "ssl://10.0.0.5:8883"}, nil},
		{"password over mqtt to a name", "broker_url = \"mqtt://mqtt.example.com:1883\"\npassword_file = \"pw\"\n",
			[]string{"cloud.broker_url:", "in clear to mqtt.example.com", "cloud.insecure"}, nil},
		{"password over ws to a name", "broker_url = \"ws://mqtt.example.com:80\"\npassword_file = \"pw\"\n",
			[]string{"cloud.broker_url:", "in clear", "cloud.insecure"}, nil},
		{"password over tcp to 10.0.0.5, insecure", "broker_url = \"tcp://10.0.0.5:1883\"\npassword_file = \"pw\"\ninsecure = true\n", nil,
			func(t *testing.T, c *Config) { require.True(t, c.Cloud.Insecure) }},
		{"password over tls to 10.0.0.5", "broker_url = \"tls://10.0.0.5:8883\"\npassword_file = \"pw\"\nca_file = \"ca.crt\"\n", nil, nil},
		{"username set", "broker_url = \"ssl://mqtt.example.com:8883\"\nusername = \"depot-7\"\npassword_file = \"pw\"\n", nil,
			func(t *testing.T, c *Config) { require.Equal(t, "depot-7", c.Cloud.Username) }},
		{"client certificate", "broker_url = \"mqtts://mqtt.example.com:8883\"\nca_file = \"ca.crt\"\ncert_file = \"box.crt\"\nkey_file = \"box.key\"\n", nil, nil},
		{"missing broker_url", "password_file = \"pw\"\n", []string{"smartboxd.toml:4: cloud: broker_url is missing"}, nil},
		{"bad scheme", "broker_url = \"http://x:1883\"\npassword_file = \"pw\"\n",
			[]string{"smartboxd.toml:5: cloud.broker_url: scheme \"http\" is not one of ssl, tls, mqtts, wss (TLS) or tcp, mqtt, ws (plain)"}, nil},
		{"no port", "broker_url = \"tcp://mqtt.example.com\"\npassword_file = \"pw\"\n", []string{"cloud.broker_url:", "needs a host and a port"}, nil},
		{"no scheme", "broker_url = \"mqtt.example.com:1883\"\npassword_file = \"pw\"\n", []string{"cloud.broker_url:"}, nil},
		{"password in url", "broker_url = \"tcp://box:pw@x:1883\"\npassword_file = \"pw\"\n", []string{"cloud.broker_url: has a user name or password in it"}, nil},
		{"path in url", "broker_url = \"tcp://x:1883/mqtt\"\npassword_file = \"pw\"\n", []string{"cloud.broker_url:", "has a path or query"}, nil},
		{"no credentials", "broker_url = \"tcp://x:1883\"\n", []string{"smartboxd.toml:4: cloud: no credentials"}, nil},
		{"cert on plain url", "broker_url = \"tcp://x:1883\"\npassword_file = \"pw\"\nca_file = \"ca.crt\"\n",
			[]string{"smartboxd.toml:7: cloud.ca_file: is set but broker_url \"tcp://x:1883\" is not TLS"}, nil},
		{"cert without key", "broker_url = \"ssl://x:8883\"\ncert_file = \"box.crt\"\n", []string{"cloud.cert_file: is set without cloud.key_file"}, nil},
		{"key without cert", "broker_url = \"ssl://x:8883\"\nkey_file = \"box.key\"\npassword_file = \"pw\"\n", []string{"cloud.key_file: is set without cloud.cert_file"}, nil},
		{"username with space", "broker_url = \"ssl://x:8883\"\nusername = \"a b\"\npassword_file = \"pw\"\n", []string{"cloud.username:"}, nil},
		{"unknown key", "broker_url = \"ssl://x:8883\"\npassword = \"hunter2\"\n", []string{"smartboxd.toml:6: cloud.password: unknown key"}, nil},
		{"wrong type", "broker_url = 1883\n", []string{"smartboxd.toml:5: cloud.broker_url: incompatible types"}, nil},
		{"insecure not a bool", "broker_url = \"tcp://10.0.0.5:1883\"\npassword_file = \"pw\"\ninsecure = \"yes\"\n",
			[]string{"cloud.insecure"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := simBase
			if tc.cloud != "" {
				src += "[cloud]\n" + tc.cloud
			}
			c, err := ParseConfig("/etc/smartbox/smartboxd.toml", []byte(src))
			if err == nil {
				err = c.Validate()
			}
			if tc.want == nil {
				require.NoError(t, err)
				if tc.check != nil {
					tc.check(t, c)
				}
				return
			}
			require.Error(t, err)
			for _, w := range tc.want {
				require.Contains(t, err.Error(), w)
			}
			require.NotContains(t, err.Error(), "hunter2")
		})
	}
}

// TestCloudCredentials reads the files [cloud] names: relative to the
// config's directory, secrets only when private, certificates checked.
func TestCloudCredentials(t *testing.T) {
	certs := brokertest.TestCerts(t)
	cert, key, _ := certs.ClientCert(t, "box-7")
	otherCert, otherKey, _ := certs.ClientCert(t, "box-8")
	dir := t.TempDir()
	write := func(name, body string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(p, []byte(body), mode))
		require.NoError(t, os.Chmod(p, mode))
		return p
	}
	write("pw", "s3cret-pw\n", 0o600)
	write("pw-open", "s3cret-pw\n", 0o640)
	write("pw-empty", "\n", 0o600)
	write("pw-two", "s3cret-pw\nmore\n", 0o600)
	write("not-pem", "hello", 0o644)
	openKey := write("open.key", string(must(os.ReadFile(key))), 0o644)
	for _, tc := range []struct {
		name  string
		cloud string
		want  []string
		check func(t *testing.T, cr Credentials)
	}{
		{"password relative to the config", "broker_url = \"tcp://127.0.0.1:1883\"\npassword_file = \"pw\"\n", nil, func(t *testing.T, cr Credentials) {
			require.Equal(t, "s3cret-pw", cr.Password, "the final newline is not part of it")
			require.Nil(t, cr.TLS)
		}},
		{"tls with system roots", "broker_url = \"ssl://x:8883\"\npassword_file = \"pw\"\n", nil, func(t *testing.T, cr Credentials) {
			require.NotNil(t, cr.TLS)
			require.Nil(t, cr.TLS.RootCAs)
		}},
		{"client certificate", "broker_url = \"ssl://x:8883\"\nca_file = \"" + certs.CAFile + "\"\ncert_file = \"" + cert + "\"\nkey_file = \"" + key + "\"\n",
			nil, func(t *testing.T, cr Credentials) {
				require.NotNil(t, cr.TLS.RootCAs)
				require.Len(t, cr.TLS.Certificates, 1)
				require.Empty(t, cr.Password)
			}},
		{"group-readable password", "broker_url = \"tcp://127.0.0.1:1883\"\npassword_file = \"pw-open\"\n",
			[]string{"smartboxd.toml:6: cloud.password_file:", "pw-open has mode 0640", "chmod 600"}, nil},
		{"missing password file", "broker_url = \"tcp://127.0.0.1:1883\"\npassword_file = \"nope\"\n", []string{"cloud.password_file:", "nope: no such file"}, nil},
		{"empty password", "broker_url = \"tcp://127.0.0.1:1883\"\npassword_file = \"pw-empty\"\n", []string{"cloud.password_file:", "is empty"}, nil},
		{"two lines", "broker_url = \"tcp://127.0.0.1:1883\"\npassword_file = \"pw-two\"\n", []string{"more than one line"}, nil},
		{"directory as password", "broker_url = \"tcp://127.0.0.1:1883\"\npassword_file = \".\"\n", []string{"is not a regular file"}, nil},
		{"ca not pem", "broker_url = \"ssl://x:8883\"\npassword_file = \"pw\"\nca_file = \"not-pem\"\n", []string{"cloud.ca_file:", "holds no PEM certificate"}, nil},
		{"readable key", "broker_url = \"ssl://x:8883\"\ncert_file = \"" + cert + "\"\nkey_file = \"" + openKey + "\"\n",
			[]string{"cloud.key_file:", "mode 0644"}, nil},
		{"key of another cert", "broker_url = \"ssl://x:8883\"\ncert_file = \"" + cert + "\"\nkey_file = \"" + otherKey + "\"\n",
			[]string{"cloud.cert_file:", "are not a certificate and its key"}, nil},
		{"certificate of another box", "broker_url = \"ssl://x:8883\"\ncert_file = \"" + otherCert + "\"\nkey_file = \"" + otherKey + "\"\n",
			[]string{"cloud.cert_file:", `is for "box-8" (its CN), not this box "box-7"`}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := ParseConfig(filepath.Join(dir, "smartboxd.toml"), []byte(simBase+"[cloud]\n"+tc.cloud))
			require.NoError(t, err)
			require.NoError(t, c.Validate())
			cr, err := c.Credentials()
			if tc.want == nil {
				require.NoError(t, err)
				tc.check(t, cr)
				return
			}
			require.Error(t, err)
			for _, w := range tc.want {
				require.Contains(t, err.Error(), w)
			}
			require.NotContains(t, err.Error(), "s3cret-pw")
		})
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}
