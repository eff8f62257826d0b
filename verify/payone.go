package verify

import (
	"crypto/md5"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
)

// PAYONE's TransactionStatus notifications (docs.payone.com, "Getting
// Started with TransactionStatus Notifications" and "Parameter for the
// TransactionStatus query") sign nothing: each carries, as its form field
// "key", the MD5 of the payment portal's key in hex, together with the
// portal's id ("portalid") and the sub-account's ("aid"). PAYONE asks the
// merchant to check all three and to accept notifications from its own
// addresses only (PayoneSourceRanges).

// PayoneSourceRanges are the addresses PAYONE sends TransactionStatus
// notifications from, as docs.payone.com lists them ("Getting Started with
// TransactionStatus Notifications": the range 185.60.20.0/24 and
// 54.246.203.105).
var PayoneSourceRanges = []string{"185.60.20.0/24", "54.246.203.105"}

// PayoneKey returns the "key" of a PAYONE notification sent for a payment
// portal whose key is portalKey: the lowercase hex of its MD5.
func PayoneKey(portalKey []byte) string {
	sum := md5.Sum(portalKey)
	return hex.EncodeToString(sum[:])
}

// Payone checks the credentials a PAYONE TransactionStatus notification
// carries.
type Payone struct {
	digests   [][md5.Size]byte
	portalID  string
	accountID string
}

// NewPayone returns the check for notifications of the payment portal
// portalID and its sub-account accountID, whose portal key is one of
// portalKeys (several during a change of key).
func NewPayone(portalKeys [][]byte, portalID, accountID string) *Payone {
	v := &Payone{portalID: portalID, accountID: accountID}
	for _, k := range portalKeys {
		v.digests = append(v.digests, md5.Sum(k))
	}
	return v
}

// Check checks a notification's key (the MD5 of a portal key, compared in
// constant time with each configured one), then its portalid and aid. A
// missing key is ErrNotSigned, one that is not 32 hex digits
// ErrMalformedSignature, any mismatch ErrBadSignature.
func (v *Payone) Check(key, portalID, accountID string) error {
	if key == "" {
		return fmt.Errorf("%w: no key field", ErrNotSigned)
	}
	var sent [md5.Size]byte
	if len(key) != hex.EncodedLen(md5.Size) {
		return fmt.Errorf("%w: key is not an MD5 in hex", ErrMalformedSignature)
	}
	if _, err := hex.Decode(sent[:], []byte(key)); err != nil {
		return fmt.Errorf("%w: key is not an MD5 in hex", ErrMalformedSignature)
	}
	match := 0
	for i := range v.digests {
		match |= subtle.ConstantTimeCompare(sent[:], v.digests[i][:])
	}
	if match != 1 {
		return fmt.Errorf("%w: key is not the MD5 of a configured portal_key", ErrBadSignature)
	}
	// The ids are no secrets: a mismatch is a notification of another
	// portal or sub-account, refused as PAYONE asks.
	if portalID != v.portalID {
		return fmt.Errorf("%w: portalid %q is not this route's", ErrBadSignature, truncate(portalID, 12))
	}
	if accountID != v.accountID {
		return fmt.Errorf("%w: aid %q is not this route's", ErrBadSignature, truncate(accountID, 12))
	}
	return nil
}
