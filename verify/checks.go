package verify

import "context"

// Check is a requirement a configuration can add to any provider's
// verification (a URL token, …). It runs before the provider's own
// verification and is recorded in Result.Also.
type Check interface {
	Name() string
	Check(cb *Callback) error
}

// WithChecks returns a verifier that runs checks, then v.
func WithChecks(v Verifier, checks ...Check) Verifier {
	if len(checks) == 0 {
		return v
	}
	return &checked{next: v, checks: checks}
}

type checked struct {
	next   Verifier
	checks []Check
}

func (c *checked) Verify(ctx context.Context, cb *Callback) (Result, error) {
	for _, check := range c.checks {
		if err := check.Check(cb); err != nil {
			return Result{}, err
		}
	}
	res, err := c.next.Verify(ctx, cb)
	if err != nil {
		return Result{}, err
	}
	for _, check := range c.checks {
		res.Also = append(res.Also, check.Name())
	}
	return res, nil
}
