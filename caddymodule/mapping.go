package caddymodule

import (
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/payhook/payhook/normalize"
)

// unmarshalMapping reads a map block, the declarative mapping of the
// generic providers (standard_webhooks, hmac):
//
//	map {
//	    batch              <path>           # the array of events, for batches
//	    id                 <path>           # the notification's own id
//	    object             payment|subscription|<path>
//	    objects {                           # with object <path>: its values
//	        <value> payment|subscription
//	    }
//	    status             <path>...        # joined by a space
//	    statuses {
//	        <provider status> <canonical status>
//	    }
//	    amount             <path> minor|decimal
//	    currency           <path>
//	    currency_default   <code>
//	    merchant_reference <path>
//	    provider_reference <path>
//	    time               <path>
//	    test               <path>           # or: live <path>
//	    failure_code       <path>
//	    failure_message    <path>
//	}
//
// Paths are gjson paths (see normalize.CheckPath); write one with quotes
// or parentheses in backticks.
func unmarshalMapping(d *caddyfile.Dispenser) (*normalize.Mapping, error) {
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
			err = singleArg(d, &m.ID)
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
			m.Statuses, err = unmarshalTable(d)
		case "amount":
			if !d.Args(&m.Amount, &m.AmountUnit) || d.NextArg() {
				err = d.Err("amount <path> minor|decimal")
			}
		case "currency":
			err = singleArg(d, &m.Currency)
		case "currency_default":
			err = singleArg(d, &m.CurrencyDefault)
		case "merchant_reference":
			err = singleArg(d, &m.MerchantReference)
		case "provider_reference":
			err = singleArg(d, &m.ProviderReference)
		case "time":
			err = singleArg(d, &m.Time)
		case "test":
			err = singleArg(d, &m.Test)
		case "live":
			err = singleArg(d, &m.Live)
		case "failure_code":
			err = singleArg(d, &m.FailureCode)
		case "failure_message":
			err = singleArg(d, &m.FailureMessage)
		default:
			return nil, d.Errf("unrecognized map option %q", option)
		}
		if err != nil {
			return nil, err
		}
	}
	if err := m.Check(); err != nil {
		return nil, d.Errf("map: %v", err)
	}
	return m, nil
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
