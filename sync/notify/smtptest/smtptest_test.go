package smtptest_test

import (
	"net/smtp"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/smartbox-oss/smartbox/sync/notify/smtptest"
)

func TestKeepsMessages(t *testing.T) {
	s := smtptest.Start(t)
	msg := "Subject: Your key\r\nTo: ada@example.com\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n" +
		"PIN: 4829=\r\n13, long line=3D joined\r\n"
	require.NoError(t, smtp.SendMail(s.Addr, nil, "bridge@example.com", []string{"ada@example.com", "desk@example.com"}, []byte(msg)))

	got := s.To("ada@example.com")
	require.Len(t, got, 1)
	require.Equal(t, "Your key", got[0].Subject)
	require.Equal(t, "PIN: 482913, long line= joined\n", got[0].Body)
	require.Contains(t, got[0].Text(), "quoted-printable\n\nPIN: 482913")
	require.Len(t, s.To("desk@example.com"), 1)
	require.Empty(t, s.To("bob@example.com"))
	require.Len(t, s.Mails(), 1)
}
