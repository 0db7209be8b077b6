package findings

import "testing"

func TestSuppression(t *testing.T) {
	f := Finding{Code: "MC0002", Kind: "ServiceEntry", ObjectName: "ldap", Namespace: "identity"}
	for _, tc := range []struct {
		s    string
		want bool
	}{
		{"MC0002=ServiceEntry ldap.identity", true},
		{"MC0002=ServiceEntry *", true},
		{"MC0002=ServiceEntry ldap.other", false},
		{"MC0001=ServiceEntry ldap.identity", false},
	} {
		s, err := ParseSuppression(tc.s)
		if err != nil {
			t.Fatal(err)
		}
		if got := s.Matches(f); got != tc.want {
			t.Errorf("%s matches %s: %v, want %v", tc.s, f.Object(), got, tc.want)
		}
	}
	if _, err := ParseSuppression("MC0002"); err == nil {
		t.Error("a suppression without an object must be rejected")
	}
}

func TestFailOn(t *testing.T) {
	for _, tc := range []struct {
		level, failOn Level
		want          bool
	}{
		{Error, Error, true}, {Warning, Error, false}, {Warning, Warning, true},
		{Info, Warning, false}, {Info, Info, true}, {Error, None, false},
	} {
		if got := Fails(Finding{Level: tc.level}, tc.failOn); got != tc.want {
			t.Errorf("%s with --fail-on %s: %v, want %v", tc.level, tc.failOn, got, tc.want)
		}
	}
	if _, err := ParseFailOn("fatal"); err == nil {
		t.Error("unknown level accepted")
	}
}

func TestUnusedSuppressionsAreNamed(t *testing.T) {
	fs := []Finding{{Code: "MC0002", Kind: "ServiceEntry", ObjectName: "ldap", Namespace: "identity"}}
	var sups []Suppression
	for _, s := range []string{"MC0002=ServiceEntry ldap.identity", "MC0002=ServiceEntry ldpa.identity", "IST0134=ServiceEntry *"} {
		sup, err := ParseSuppression(s)
		if err != nil {
			t.Fatal(err)
		}
		sups = append(sups, sup)
	}
	got := Unused(fs, sups)
	if len(got) != 2 || got[0] != "MC0002=ServiceEntry ldpa.identity" || got[1] != "IST0134=ServiceEntry *" {
		t.Errorf("Unused = %q, want the typo and the code with no finding", got)
	}
}
