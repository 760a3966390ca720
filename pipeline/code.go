package pipeline

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/hibiken/asynq"
)

// errNoCoder fails coding runs until the coding stage is wired in.
var errNoCoder = errors.New("no coder is configured")

// handleCode is the coding stage: the transcript becomes a draft Claim.
func (p *Pipeline) handleCode(ctx context.Context, t *asynq.Task) error {
	var pl stagePayload
	if err := json.Unmarshal(t.Payload(), &pl); err != nil {
		return fmt.Errorf("payload: %v: %w", err, asynq.SkipRetry)
	}
	return p.fail(ctx, pl.Task, "coding", errNoCoder)
}
