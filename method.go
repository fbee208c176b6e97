package protows

import "strings"

// MethodID returns the compact identifier of a method on the wire: the
// 32-bit FNV-1a hash of its full name ("/package.Service/Method") as UTF-8.
// Registries reject two names with the same id, and 0 is never a valid id,
// because on the wire 0 means "no id".
func MethodID(fullName string) uint32 {
	// FNV-1a, 32 bit (http://www.isthe.com/chongo/tech/comp/fnv/): offset
	// basis and prime as published. Written inline rather than with hash/fnv
	// so that the hot path does not allocate a hash.Hash.
	const (
		offset32 = 2166136261
		prime32  = 16777619
	)
	h := uint32(offset32)
	for i := 0; i < len(fullName); i++ {
		h ^= uint32(fullName[i])
		h *= prime32
	}
	return h
}

// ValidMethodName reports whether name has the form of a full method name:
// "/" + fully qualified service name + "/" + method name, with no empty part.
func ValidMethodName(name string) bool {
	rest, ok := strings.CutPrefix(name, "/")
	if !ok {
		return false
	}
	service, method, ok := strings.Cut(rest, "/")
	return ok && service != "" && method != "" && !strings.Contains(method, "/")
}
