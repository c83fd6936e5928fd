/* A test-only LD_PRELOAD shim (never linked into bkv): fsync(2) of the one
 * directory named by BKV_TEST_FAIL_DIR_FSYNC fails with EIO, every other
 * fsync is the real one. libfiu can fail fsync only by call count, so it
 * cannot reach the parent directory's sync that follows a restore's rename
 * after dozens of file syncs on other threads. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int fsync(int fd) {
  int (*real)(int) = (int (*)(int))dlsym(RTLD_NEXT, "fsync");
  const char* dir = getenv("BKV_TEST_FAIL_DIR_FSYNC");
  struct stat st;
  if (dir != NULL && fstat(fd, &st) == 0 && S_ISDIR(st.st_mode)) {
    char link[64], path[PATH_MAX];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    const ssize_t n = readlink(link, path, sizeof path - 1);
    if (n > 0) {
      path[n] = '\0';
      if (strcmp(path, dir) == 0) {
        errno = EIO;
        return -1;
      }
    }
  }
  return real(fd);
}
