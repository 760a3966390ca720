package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"time"

	"github.com/iambilly/billy/internal/benchkit"
)

// rawHTTP is a keep-alive HTTP/1.1 connection that sends GETs and reads whole bodies, sized or
// chunked. As in billybench, the searches are driven with it rather than net/http's client, as wrk
// would be, so that the measure is Billy's cost rather than the load generator's.
type rawHTTP struct {
	conn   net.Conn
	br     *bufio.Reader
	host   string
	req    []byte
	body   []byte
	closed bool // the server said Connection: close
}

func dialRaw(host string) (*rawHTTP, error) {
	c, err := net.Dial("tcp", host)
	if err != nil {
		return nil, err
	}
	return &rawHTTP{conn: c, br: bufio.NewReaderSize(c, 64<<10), host: host}, nil
}

// requestTimeout bounds one request, so that a stuck server fails the run instead of hanging it.
const requestTimeout = 2 * time.Minute

// get sends one GET and returns the status and body; the body is valid until the next call.
// Searches ask for strict handling, so that a parameter the server does not understand fails the
// request instead of being ignored and making the query look cheap.
func (c *rawHTTP) get(path string) (int, []byte, error) {
	if err := c.conn.SetDeadline(time.Now().Add(requestTimeout)); err != nil {
		return 0, nil, err
	}
	c.req = append(c.req[:0], "GET "...)
	c.req = append(c.req, path...)
	c.req = append(c.req, " HTTP/1.1\r\nHost: "...)
	c.req = append(c.req, c.host...)
	c.req = append(c.req, "\r\nAccept: application/fhir+json\r\nPrefer: handling=strict\r\n\r\n"...)
	if _, err := c.conn.Write(c.req); err != nil {
		return 0, nil, err
	}
	line, err := c.br.ReadSlice('\n')
	if err != nil {
		return 0, nil, err
	}
	if len(line) < 12 {
		return 0, nil, fmt.Errorf("bad status line %q", line)
	}
	status, err := strconv.Atoi(string(line[9:12]))
	if err != nil {
		return 0, nil, fmt.Errorf("bad status line %q", line)
	}
	length, chunked := -1, false
	for {
		h, err := c.br.ReadSlice('\n')
		if err != nil {
			return 0, nil, err
		}
		if len(h) <= 2 {
			break
		}
		k, v, ok := bytes.Cut(h, []byte(":"))
		if !ok {
			continue
		}
		v = bytes.TrimSpace(v)
		switch {
		case bytes.EqualFold(k, []byte("Content-Length")):
			length, _ = strconv.Atoi(string(v))
		case bytes.EqualFold(k, []byte("Transfer-Encoding")):
			chunked = bytes.EqualFold(v, []byte("chunked"))
		case bytes.EqualFold(k, []byte("Connection")):
			c.closed = bytes.EqualFold(v, []byte("close"))
		}
	}
	c.body = c.body[:0]
	switch {
	case chunked:
		err = c.readChunked()
	case length >= 0:
		err = c.readN(length)
	default:
		err = errors.New("response with neither Content-Length nor chunked encoding")
	}
	return status, c.body, err
}

func (c *rawHTTP) readN(n int) error {
	at := len(c.body)
	c.body = append(c.body, make([]byte, n)...)
	_, err := io.ReadFull(c.br, c.body[at:])
	return err
}

func (c *rawHTTP) readChunked() error {
	for {
		line, err := c.br.ReadSlice('\n')
		if err != nil {
			return err
		}
		size, _, _ := bytes.Cut(bytes.TrimSpace(line), []byte(";"))
		n, err := strconv.ParseInt(string(size), 16, 32)
		if err != nil || n < 0 {
			return fmt.Errorf("bad chunk size %q", line)
		}
		if n == 0 {
			for { // trailers, up to the empty line
				t, err := c.br.ReadSlice('\n')
				if err != nil {
					return err
				}
				if len(t) <= 2 {
					return nil
				}
			}
		}
		if err := c.readN(int(n)); err != nil {
			return err
		}
		if _, err := c.br.Discard(2); err != nil { // CRLF
			return err
		}
	}
}

type latencies = benchkit.Latencies
