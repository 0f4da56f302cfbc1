// Private to the launch path; exposed for tests that feed the monitor hostile agent messages.
#pragma once

#include "haywire/base/error.h"
#include "haywire/glass/attach.h"

namespace haywire::glass {

// Reads one agent message from `sock` (non-blocking: call when readable) and takes ownership of
// every descriptor attached, whatever else is wrong. ParseError for a malformed message (size,
// magic, version, count mismatch, a descriptor that is not a userfaultfd), SystemCallFailed
// when the agent reports that userfaultfd(2) failed in the target.
Result<TargetUffds> receive_agent_hello(int sock, int expected_count);

}  // namespace haywire::glass
