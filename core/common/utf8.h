// UTF-8 well-formedness (RFC 3629: no overlong forms, no surrogates, nothing above U+10FFFF).
// Thread-safety: a pure function.
#pragma once

#include <string>

namespace moke {

// True when `s` is valid UTF-8.
bool IsValidUtf8(const std::string& s);

}  // namespace moke
