package komboemu

import (
	"encoding/json"
	"time"
)

// Duration reads "250ms"-style strings in the control API's JSON.
type Duration struct{ D time.Duration }

func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	v, err := time.ParseDuration(s)
	d.D = v
	return err
}
