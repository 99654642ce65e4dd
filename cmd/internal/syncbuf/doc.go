// Package syncbuf has a bytes.Buffer that a command's goroutines may write
// while a test reads it, for the commands' tests that capture output and
// logs (go test -race flags a plain bytes.Buffer used that way).
package syncbuf
