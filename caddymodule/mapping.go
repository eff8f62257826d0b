package caddymodule

import (
	"strings"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/payhook/payhook/normalize"
)

// unmarshalMapping reads a map block, the declarative mapping of the
// generic providers (standard_webhooks, hmac):
//
//	map {
//	    batch              <path>           # the array of events, for batches
//	    id                 <path>...        # the notification's own id
//	    object             payment|subscription|<path>
//	    objects {                           # with object <path>: its values
//	        <value> payment|subscription
//	    }
//	    status             <path>...        # joined by a space
//	    statuses {
//	        <provider status> <canonical status>
//	        <provider status> <canonical status> if|unless <path> <value> ...
//	    }
//	    amount             <path>... minor|decimal
//	    currency           <path>...
//	    currency_default   <code>
//	    merchant_reference <path>...
//	    provider_reference <path>...
//	    payment_reference  <path>...        # the payment the event is about
//	    time               <path>...
//	    test               <path>...        # or: live <path>...
//	    failure_code       <path>...        # read on failed and refund_failed only
//	    failure_message    <path>...
//	}
//
// Several paths are in order of preference: the first that holds a value is
// read. Paths are gjson paths (see normalize.CheckPath); write one with
// quotes or parentheses in backticks.
func unmarshalMapping(d *caddyfile.Dispenser) (*normalize.Mapping, error) {
	m, err := unmarshalMappingFields(d)
	if err != nil {
		return nil, err
	}
	if err := m.Check(); err != nil {
		return nil, d.Errf("map: %v", err)
	}
	return m, nil
}

// unmarshalMappingFields reads a map block's fields, unchecked: a preset's
// route gives only those it changes.
func unmarshalMappingFields(d *caddyfile.Dispenser) (*normalize.Mapping, error) {
	m := new(normalize.Mapping)
	if d.NextArg() {
		return nil, d.ArgErr()
	}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		option := d.Val()
		var err error
		switch option {
		case "batch":
			err = singleArg(d, &m.Batch)
		case "id":
			err = pathsArg(d, &m.ID)
		case "object":
			err = singleArg(d, &m.Object)
		case "objects":
			m.Objects, err = unmarshalTable(d)
		case "status":
			m.Status = d.RemainingArgs()
			if len(m.Status) == 0 {
				err = d.ArgErr()
			}
		case "statuses":
			m.Statuses, m.StatusRules, err = unmarshalStatuses(d)
		case "amount":
			args := d.RemainingArgs()
			if len(args) < 2 {
				err = d.Err("amount <path>... minor|decimal")
				break
			}
			m.Amount, m.AmountUnit = args[:len(args)-1], args[len(args)-1]
		case "currency":
			err = pathsArg(d, &m.Currency)
		case "currency_default":
			err = singleArg(d, &m.CurrencyDefault)
		case "merchant_reference":
			err = pathsArg(d, &m.MerchantReference)
		case "provider_reference":
			err = pathsArg(d, &m.ProviderReference)
		case "payment_reference":
			err = pathsArg(d, &m.PaymentReference)
		case "time":
			err = pathsArg(d, &m.Time)
		case "test":
			err = pathsArg(d, &m.Test)
		case "live":
			err = pathsArg(d, &m.Live)
		case "failure_code":
			err = pathsArg(d, &m.FailureCode)
		case "failure_message":
			err = pathsArg(d, &m.FailureMessage)
		default:
			return nil, d.Errf("unrecognized map option %q", option)
		}
		if err != nil {
			return nil, err
		}
	}
	return m, nil
}

// pathsArg reads the paths of the current option, in order of preference.
func pathsArg(d *caddyfile.Dispenser, target *normalize.Paths) error {
	*target = d.RemainingArgs()
	if len(*target) == 0 {
		return d.ArgErr()
	}
	return nil
}

// unmarshalTable reads a block of "<key> <value>" lines.
func unmarshalTable(d *caddyfile.Dispenser) (map[string]string, error) {
	if d.NextArg() {
		return nil, d.ArgErr()
	}
	table := map[string]string{}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		key := d.Val()
		var value string
		if !d.Args(&value) || d.NextArg() {
			return nil, d.Errf("%q: want one value", key)
		}
		if _, dup := table[key]; dup {
			return nil, d.Errf("%q is mapped twice", key)
		}
		table[key] = value
	}
	return table, nil
}

// unmarshalStatuses reads the statuses block: "<provider status> <canonical
// status>" lines into the table, and lines with conditions ("if <path>
// <value>", "unless <path> <value>", as many as needed, all of which must
// hold) into rules, in their order.
func unmarshalStatuses(d *caddyfile.Dispenser) (map[string]string, []normalize.StatusRule, error) {
	if d.NextArg() {
		return nil, nil, d.ArgErr()
	}
	table := map[string]string{}
	var rules []normalize.StatusRule
	seen := map[string]bool{}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		key := d.Val()
		args := d.RemainingArgs()
		if len(args) == 0 || (len(args)-1)%3 != 0 {
			return nil, nil, d.Errf("%q: want <canonical status> [if|unless <path> <value>]...", key)
		}
		if len(args) == 1 {
			if _, dup := table[key]; dup {
				return nil, nil, d.Errf("%q is mapped twice", key)
			}
			table[key] = args[0]
			continue
		}
		rule := normalize.StatusRule{ProviderStatus: key, Status: args[0]}
		for i := 1; i < len(args); i += 3 {
			if args[i] != "if" && args[i] != "unless" {
				return nil, nil, d.Errf("%q: %q where if or unless belongs", key, args[i])
			}
			rule.When = append(rule.When, normalize.Condition{Path: args[i+1], Value: args[i+2], Not: args[i] == "unless"})
		}
		conditions := strings.Join(args[1:], "\x00")
		if seen[key+"\x00"+conditions] {
			return nil, nil, d.Errf("%q is mapped twice under the same conditions", key)
		}
		seen[key+"\x00"+conditions] = true
		rules = append(rules, rule)
	}
	return table, rules, nil
}

// mapEvents normalizes with the route's mapping, or without one: every
// event is then unknown, its body data.original.
func mapEvents(mapping *normalize.Mapping, in *normalize.Input, notificationID string, events []*normalize.Event) ([]*normalize.Event, error) {
	m, mapped := mapping, true
	if m == nil {
		m, mapped = &normalize.Mapping{}, false
	}
	mappedEvents, err := m.Map(in, normalize.MappingInput{NotificationID: notificationID, Mapped: mapped})
	if err != nil {
		return events, err
	}
	return append(events, mappedEvents...), nil
}
