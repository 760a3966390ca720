package hl7v2

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/iambilly/billy/fhir"
	billycrypto "github.com/iambilly/billy/internal/crypto"
)

func isNotFound(err error) bool { return errors.Is(err, fhir.ErrNotFound) }

// Rejected is a message kept in hl7_errors.
type Rejected struct {
	ID         int64
	ReceivedAt time.Time
	Remote     string
	ControlID  string
	Type       string
	Code       string
	Reason     string
	ReplayedAt *time.Time
}

// Errors lists the latest rejected messages, newest first.
func (s *Server) Errors(ctx context.Context, limit int) ([]Rejected, error) {
	rows, err := s.Pool.Query(ctx, `SELECT id, received_at, remote_addr, coalesce(control_id, ''), coalesce(type, ''), code, reason, replayed_at
		FROM hl7_errors ORDER BY id DESC LIMIT $1`, limit)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (Rejected, error) {
		var e Rejected
		err := r.Scan(&e.ID, &e.ReceivedAt, &e.Remote, &e.ControlID, &e.Type, &e.Code, &e.Reason, &e.ReplayedAt)
		return e, err
	})
}

// Message returns a kept message as received.
func (s *Server) Message(ctx context.Context, id int64) ([]byte, error) {
	var body []byte
	err := s.Pool.QueryRow(ctx, `SELECT message FROM hl7_errors WHERE id = $1`, id).Scan(&body)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fhir.Errorf(fhir.ErrNotFound, "not-found", "no rejected message %d", id)
	}
	if err != nil {
		return nil, err
	}
	if bytes.HasPrefix(body, []byte("BILLYENC")) {
		if s.Keys == nil {
			return nil, errors.New("the message is sealed: the master key is needed")
		}
		r, err := billycrypto.NewReader(bytes.NewReader(body), int64(len(body)), s.Keys)
		if err != nil {
			return nil, err
		}
		return io.ReadAll(r)
	}
	return body, nil
}

// Replay applies a kept message again (after the cause was fixed) and returns the result; an AA
// marks it replayed.
func (s *Server) Replay(ctx context.Context, id int64) (Result, error) {
	raw, err := s.Message(ctx, id)
	if err != nil {
		return Result{}, err
	}
	_, res := s.apply(ctx, raw, fmt.Sprintf("replay of %d", id), false)
	if res.Code == AA {
		if _, err := s.Pool.Exec(ctx, `UPDATE hl7_errors SET replayed_at = $2 WHERE id = $1`, id, s.now()); err != nil {
			return res, err
		}
	}
	return res, nil
}
