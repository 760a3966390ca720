package x12

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/iambilly/billy/internal/pg"
)

// Generate builds the 837P of claims (by id), gives it control numbers and patient control numbers
// and writes it, recording the interchange: all in one transaction, after the build succeeded, so
// a claim with missing data consumes no number and leaves no trace. Control numbers come from
// sequences (never reused, even when a transaction rolls back); a Claim keeps the patient control
// number it was first sent with.
func Generate(ctx context.Context, pool *pgxpool.Pool, src Source, set Settings, ids []string, now time.Time) ([]byte, *Batch, error) {
	b, err := Build(ctx, src, set, ids, now)
	if err != nil {
		return nil, nil, err
	}
	var out []byte
	err = pg.InTx(ctx, pool, func(tx pgx.Tx) error {
		if err := tx.QueryRow(ctx, `SELECT nextval('x12_interchange_control'), nextval('x12_group_control')`).Scan(&b.Interchange, &b.Group); err != nil {
			return fmt.Errorf("x12 control numbers: %w", err)
		}
		claims := b.allClaims()
		claimIDs := make([]string, len(claims))
		for i, c := range claims {
			claimIDs[i] = c.ClaimID
		}
		// A claim keeps the number it was first sent with; only new ones draw from the sequence.
		if _, err := tx.Exec(ctx, `INSERT INTO x12_claims (claim_id, pcn, sent_at)
			SELECT id, 'B' || lpad(nextval('x12_claim_control')::text, 9, '0'), $2 FROM unnest($1::text[]) AS id
			WHERE NOT EXISTS (SELECT 1 FROM x12_claims c WHERE c.claim_id = id)
			ON CONFLICT (claim_id) DO NOTHING`, claimIDs, now); err != nil {
			return fmt.Errorf("x12 patient control numbers: %w", err)
		}
		rows, err := tx.Query(ctx, `SELECT claim_id, pcn FROM x12_claims WHERE claim_id = ANY($1)`, claimIDs)
		if err != nil {
			return fmt.Errorf("x12 patient control numbers: %w", err)
		}
		pcns := map[string]string{}
		for rows.Next() {
			var id, pcn string
			if err := rows.Scan(&id, &pcn); err != nil {
				return err
			}
			pcns[id] = pcn
		}
		if err := rows.Err(); err != nil {
			return fmt.Errorf("x12 patient control numbers: %w", err)
		}
		for _, c := range claims {
			c.PCN = pcns[c.ClaimID]
		}
		out = b.Write()
		sum := sha256.Sum256(out)
		_, err = tx.Exec(ctx, `INSERT INTO x12_interchanges (direction, control, sha256, claims, created_at) VALUES ('out', $1, $2, $3, $4)`,
			fmt.Sprintf("%09d", b.Interchange), hex.EncodeToString(sum[:]), claimIDs, now)
		return err
	})
	if err != nil {
		return nil, nil, err
	}
	return out, b, nil
}

// allClaims lists the batch's claims in the order they are written.
func (b *Batch) allClaims() []*Claim {
	var out []*Claim
	for _, bg := range b.Billing {
		for _, sg := range bg.Subscribers {
			out = append(out, sg.Claims...)
			for _, d := range sg.Dependents {
				out = append(out, d.Claims...)
			}
		}
	}
	return out
}
