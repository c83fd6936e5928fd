#include <malloc.h>

#include <cstdio>

#include "client/cli/cli.h"

int main(int argc, char** argv) {
  // Packs (16 MiB) are built on one thread and freed on another. glibc's
  // adaptive mmap threshold would move such buffers into the heap after the
  // first free, where they fragment and peak RSS creeps up with the data
  // size; a fixed threshold keeps them mmapped, returned on free.
  mallopt(M_MMAP_THRESHOLD, 4 << 20);
  return bkv::cli::Run(argc, argv, stdout, stderr);
}
