package privacy_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/kombosync/kombosync/privacy"
)

var key = []byte("0123456789abcdef0123456789abcdef")

const employee = `{"id":"e1","remote_id":"42","first_name":"Ada","date_of_birth":"1815-12-10","ssn":"078-05-1120",
"home_address":{"street_1":"12 St James's Square","city":"London"},"bank_accounts":[{"iban":"GB33BUKB20201555555555"}],
"employments":[{"pay_rate":5000,"job_title":"Analyst"},{"pay_rate":null}],"salary":{"amount":123.450}}`

func TestApplyDropsAndHashesWhatThePolicyNames(t *testing.T) {
	p, err := privacy.Parse([]byte(`{"hris/employees": {"drop": ["date_of_birth", "home_address.street_1", "bank_accounts"],
		"hash": ["ssn", "employments[].pay_rate", "salary"]}}`), key)
	require.NoError(t, err)
	out, changed, err := p.Apply("hris/employees", []byte(employee))
	require.NoError(t, err)
	require.True(t, changed)
	for _, v := range []string{"1815-12-10", "St James", "GB33BUKB", "078-05-1120", "5000", "123.45"} {
		require.NotContains(t, string(out), v)
	}
	var got map[string]any
	require.NoError(t, json.Unmarshal(out, &got))
	require.Equal(t, "Ada", got["first_name"], "fields without a rule stay")
	require.Equal(t, map[string]any{"city": "London"}, got["home_address"])
	require.NotContains(t, got, "date_of_birth")
	require.NotContains(t, got, "bank_accounts")
	require.True(t, strings.HasPrefix(got["ssn"].(string), privacy.HashPrefix))
	emps := got["employments"].([]any)
	require.True(t, strings.HasPrefix(emps[0].(map[string]any)["pay_rate"].(string), privacy.HashPrefix))
	require.Nil(t, emps[1].(map[string]any)["pay_rate"], "null stays null")
	require.Equal(t, "Analyst", emps[0].(map[string]any)["job_title"])

	again, changed, err := p.Apply("hris/employees", out)
	require.NoError(t, err)
	require.False(t, changed, "applying twice changes nothing: a hashed value is not hashed again")
	require.Equal(t, out, again)

	// The hash is keyed and stable: the same value, the same hash; another key, another.
	out2, _, err := p.Apply("hris/employees", []byte(employee))
	require.NoError(t, err)
	require.JSONEq(t, string(out), string(out2))
	other, err := privacy.Parse([]byte(`{"hris/employees": {"hash": ["ssn"]}}`), []byte(strings.Repeat("k", 32)))
	require.NoError(t, err)
	out3, _, err := other.Apply("hris/employees", []byte(employee))
	require.NoError(t, err)
	var g3 map[string]any
	require.NoError(t, json.Unmarshal(out3, &g3))
	require.NotEqual(t, got["ssn"], g3["ssn"])

	untouched, changed, err := p.Apply("hris/absences", []byte(employee))
	require.NoError(t, err)
	require.False(t, changed, "another endpoint's records are unaffected")
	require.Equal(t, employee, string(untouched))
	require.Equal(t, []string{"bank_accounts", "date_of_birth", "employments", "home_address", "salary", "ssn"}, p.TopLevel("hris/employees"))
}

func TestParseRefusesWhatItCannotApply(t *testing.T) {
	for doc, want := range map[string]string{
		`{"hris/nope": {"drop": ["x"]}}`:                     `unknown endpoint "hris/nope"`,
		`{"hris/employees": {"drop": ["id"]}}`:               "kombosync keys on this field",
		`{"hris/employees": {"drop": ["a..b"]}}`:             "is not a key",
		`{"hris/employees": {"drop": ["emails[]"]}}`:         "names a field, not the elements",
		`{"hris/employees": {"drop": ["x"], "hash": ["x"]}}`: "listed twice",
		`{"hris/employees": {"hash": ["ssn"]}}`:              "FIELD_POLICY_HASH_KEY of at least 32 bytes",
		`{"hris/employees": {"remove": ["ssn"]}}`:            "not a policy document",
		`[]`: "not a policy document",
	} {
		var k []byte
		if !strings.Contains(want, "HASH_KEY") {
			k = key
		}
		_, err := privacy.Parse([]byte(doc), k)
		require.ErrorContains(t, err, want, doc)
	}
}

func TestFingerprintFollowsTheRulesNotTheirOrder(t *testing.T) {
	a, err := privacy.Parse([]byte(`{"hris/employees": {"drop": ["a", "b"]}}`), nil)
	require.NoError(t, err)
	b, err := privacy.Parse([]byte(`{"hris/employees": {"drop": ["b", "a"]}}`), nil)
	require.NoError(t, err)
	c, err := privacy.Parse([]byte(`{"hris/employees": {"drop": ["a"]}}`), nil)
	require.NoError(t, err)
	require.Equal(t, a.Fingerprint("hris/employees"), b.Fingerprint("hris/employees"))
	require.NotEqual(t, a.Fingerprint("hris/employees"), c.Fingerprint("hris/employees"))
	require.Empty(t, a.Fingerprint("hris/absences"))
	var none *privacy.Policy
	require.True(t, none.Empty())
	out, changed, err := none.Apply("hris/employees", []byte(employee))
	require.NoError(t, err)
	require.False(t, changed)
	require.Equal(t, employee, string(out))
}
