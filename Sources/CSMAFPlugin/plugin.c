/* The ABI lives in include/smaf/plugin.h; this file only lets SwiftPM build the
 * header as a module and checks at compile time that the layout is what the
 * documentation promises, so an accidental reorder fails the build. */
#include "smaf/plugin.h"

_Static_assert(offsetof(struct smaf_plugin, struct_size) == 0, "struct_size first");
_Static_assert(offsetof(struct smaf_core, struct_size) == 0, "struct_size first");
_Static_assert(offsetof(struct smaf_allocation, struct_size) == 0, "struct_size first");
_Static_assert(sizeof(struct smaf_plane) == 16, "smaf_plane is 16 bytes");
_Static_assert(offsetof(struct smaf_plugin, name) == 24, "smaf_plugin v1 layout");
