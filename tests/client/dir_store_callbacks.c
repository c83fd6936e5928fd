#define _GNU_SOURCE
#include "tests/client/dir_store_callbacks.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static bkv_status Fail(bkv_store_error* e, const char* what) {
  snprintf(e->message, sizeof e->message, "%s: %s", what, strerror(errno));
  return errno == ENOENT ? BKV_NOT_FOUND : BKV_UNAVAILABLE;
}

static void PathOf(const char* dir, const char* name, char* out, size_t cap) {
  snprintf(out, cap, "%s/%s", dir, name);
}

static bkv_status DirPut(void* ctx, const char* name, bkv_read_fn read,
                         void* reader, bkv_store_error* e) {
  char path[4096], tmp[4200];
  PathOf(ctx, name, path, sizeof path);
  snprintf(tmp, sizeof tmp, "%s/.tmp-%s-%d", (const char*)ctx, name,
           (int)getpid());
  int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return Fail(e, "open");
  unsigned char buf[65536];
  bkv_status s = BKV_OK;
  for (;;) {
    size_t n = 0;
    s = read(reader, buf, sizeof buf, &n);
    if (s != BKV_OK || n == 0) break;
    if (write(fd, buf, n) != (ssize_t)n) {
      s = Fail(e, "write");
      break;
    }
  }
  if (s == BKV_OK && fsync(fd) != 0) s = Fail(e, "fsync");
  close(fd);
  if (s == BKV_OK && rename(tmp, path) != 0) s = Fail(e, "rename");
  if (s != BKV_OK) unlink(tmp);
  return s;
}

static bkv_status DirGet(void* ctx, const char* name, uint64_t offset,
                         uint8_t* buf, size_t cap, size_t* out_len,
                         bkv_store_error* e) {
  char path[4096];
  PathOf(ctx, name, path, sizeof path);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Fail(e, "open");
  size_t got = 0;
  while (got < cap) {
    ssize_t n = pread(fd, buf + got, cap - got, (off_t)(offset + got));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      close(fd);
      return Fail(e, "pread");
    }
    if (n == 0) break;
    got += (size_t)n;
  }
  close(fd);
  *out_len = got;
  return BKV_OK;
}

static bkv_status DirList(void* ctx, bkv_list_fn emit, void* lister,
                          bkv_store_error* e) {
  DIR* d = opendir(ctx);
  if (d == NULL) return Fail(e, "opendir");
  struct dirent* de;
  while ((de = readdir(d)) != NULL) {
    if (de->d_name[0] == '.') continue;
    char path[4096];
    struct stat st;
    PathOf(ctx, de->d_name, path, sizeof path);
    if (stat(path, &st) == 0 && S_ISREG(st.st_mode)) {
      emit(lister, de->d_name, (uint64_t)st.st_size);
    }
  }
  closedir(d);
  return BKV_OK;
}

static bkv_status DirRemove(void* ctx, const char* name, bkv_store_error* e) {
  char path[4096];
  PathOf(ctx, name, path, sizeof path);
  if (unlink(path) != 0 && errno != ENOENT) return Fail(e, "unlink");
  return BKV_OK;
}

static bkv_status DirStat(void* ctx, const char* name, uint64_t* out_size,
                          bkv_store_error* e) {
  char path[4096];
  struct stat st;
  PathOf(ctx, name, path, sizeof path);
  if (stat(path, &st) != 0) return Fail(e, "stat");
  *out_size = (uint64_t)st.st_size;
  return BKV_OK;
}

bkv_store_callbacks bkv_test_dir_callbacks(void) {
  bkv_store_callbacks cb;
  memset(&cb, 0, sizeof cb);
  cb.put = DirPut;
  cb.get = DirGet;
  cb.list = DirList;
  cb.remove = DirRemove;
  cb.stat = DirStat;
  cb.destroy = free;
  return cb;
}

void* bkv_test_dir_ctx(const char* dir) {
  if (mkdir(dir, 0700) != 0 && errno != EEXIST) return NULL;
  return strdup(dir);
}
