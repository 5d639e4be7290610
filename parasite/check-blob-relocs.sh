#!/bin/sh
# Fails if a linked blob needs an absolute relocation: blobs run at any address.
bad=$(readelf -rW "$1" | grep -E 'R_X86_64_(64|32|32S|GOTPCREL|GOTPCRELX|REX_GOTPCRELX)[[:space:]]')
if [ -n "$bad" ]; then
  echo "blob $1 has absolute relocations (use RIP-relative data, no pointer tables):" >&2
  echo "$bad" >&2
  exit 1
fi
# A blob must not reference anything outside itself.
undef=$(nm -u "$1")
if [ -n "$undef" ]; then
  echo "blob $1 has undefined symbols: $undef" >&2
  exit 1
fi
