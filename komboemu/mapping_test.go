package komboemu

import (
	"maps"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/kombosync/kombosync/kombo"
)

// TestModelMappingCoversEveryNesting checks kombo's model→endpoint table against the emulator's
// nesting: when a record changes, every endpoint whose records embed it (directly, or through
// "deep" nesting such as candidate → applications → interviews) must be dirtied by the changed
// model's name, or a delta would miss the change that updated_after reports.
func TestModelMappingCoversEveryNesting(t *testing.T) {
	for _, cat := range []kombo.Category{kombo.CategoryHRIS, kombo.CategoryATS} {
		for _, sp := range specs {
			if sp.endpoint.Category != cat {
				continue
			}
			touched := map[string]bool{}
			var walk func(endpoint string, own bool)
			walk = func(endpoint string, own bool) {
				for _, rel := range relations {
					if rel.child != endpoint || !(own || rel.deep) || touched[rel.parent] {
						continue
					}
					if specByName(cat, rel.parent) == nil || specByName(cat, rel.child) == nil {
						continue // a relation of the other category
					}
					touched[rel.parent] = true
					walk(rel.parent, false)
				}
			}
			walk(sp.endpoint.Name, true)
			dirtied, known := kombo.DirtiedEndpoints(sp.endpoint.Model(), kombo.DefaultEndpoints())
			require.True(t, known, "%s: model %s is in the table", sp.endpoint, sp.endpoint.Model())
			require.Contains(t, dirtied, sp.endpoint, "%s dirties its own endpoint", sp.endpoint.Model())
			for _, parent := range slices.Sorted(maps.Keys(touched)) {
				if !slices.Contains(dirtied, kombo.Endpoint{Category: cat, Name: parent}) {
					t.Errorf("a change of %s shows in %s/%s (nested), so %s must dirty it", sp.endpoint, cat.Path(), parent, sp.endpoint.Model())
				}
			}
		}
	}
}
