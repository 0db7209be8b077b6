package probe

// Observer returns the function of this package that observes a call of
// protocol p (one of the Protocol names: HTTP, HTTPS, TLS, TCP, MySQL,
// GRPC, GRPCS), for `meshconform checks --explain`; nil for an unknown
// protocol. It is a method expression: name it with srcloc.Func, never
// call it.
func Observer(p string) any {
	switch p {
	case HTTP, HTTPS:
		return (*attempt).http
	case TLS:
		return (*attempt).tls
	case TCP:
		return (*attempt).tcp
	case MySQL:
		return (*attempt).mysql
	case GRPC, GRPCS:
		return (*attempt).grpc
	}
	return nil
}
