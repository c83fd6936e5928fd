package dev.bkv;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.io.InputStream;
import java.io.RandomAccessFile;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * The JVM binding against real stores (file, and a StoreCallbacks over a directory) and a real
 * vault (started by junit_runner.cc, which passes it in BKV_TEST_* variables).
 */
@Timeout(value = 120, unit = TimeUnit.SECONDS)
class BkvTest {
  @TempDir Path dir;

  static String env(String name) {
    String v = System.getenv(name);
    if (v == null || v.isEmpty()) throw new IllegalStateException(name + " unset: run via ctest");
    return v;
  }

  Path randomFile(String name, int size, long seed) throws IOException {
    byte[] bytes = new byte[size];
    new Random(seed).nextBytes(bytes);
    return Files.write(dir.resolve(name), bytes);
  }

  /** An app's cloud store, here a directory: temporary name, then an atomic rename. */
  static final class DirStore implements StoreCallbacks {
    final Path root;
    boolean down;

    DirStore(Path root) throws IOException {
      this.root = Files.createDirectories(root);
    }

    void check() throws BkvException {
      if (down) throw new BkvException(Status.UNAVAILABLE, "drive offline");
    }

    @Override
    public void put(String name, InputStream data) throws BkvException, IOException {
      check();
      Path tmp = root.resolve(".tmp-" + name);
      try {
        Files.copy(data, tmp, StandardCopyOption.REPLACE_EXISTING);
        Files.move(tmp, root.resolve(name), StandardCopyOption.ATOMIC_MOVE);
      } finally {
        Files.deleteIfExists(tmp);
      }
    }

    @Override
    public int get(String name, long offset, byte[] buffer) throws BkvException, IOException {
      check();
      Path p = root.resolve(name);
      if (!Files.exists(p)) throw new BkvException(Status.NOT_FOUND, name);
      try (RandomAccessFile f = new RandomAccessFile(p.toFile(), "r")) {
        f.seek(offset);
        int got = 0;
        while (got < buffer.length) {
          int n = f.read(buffer, got, buffer.length - got);
          if (n < 0) break;
          got += n;
        }
        return got;
      }
    }

    @Override
    public List<StoredObject> list() throws BkvException, IOException {
      check();
      List<StoredObject> out = new ArrayList<>();
      try (var files = Files.list(root)) {
        for (Path p : (Iterable<Path>) files::iterator) {
          String n = p.getFileName().toString();
          if (!n.startsWith(".")) out.add(new StoredObject(n, Files.size(p)));
        }
      }
      return out;
    }

    @Override
    public void remove(String name) throws BkvException, IOException {
      check();
      Files.deleteIfExists(root.resolve(name));
    }

    @Override
    public long size(String name) throws BkvException, IOException {
      check();
      Path p = root.resolve(name);
      if (!Files.exists(p)) throw new BkvException(Status.NOT_FOUND, name);
      return Files.size(p);
    }
  }

  @Test
  void keysGenerateFormatAndParse() throws Exception {
    try (BackupKey key = BackupKey.generate()) {
      char[] text = key.format();
      assertEquals(79, text.length);
      try (BackupKey again = BackupKey.parse(text)) {
        assertArrayEquals(text, again.format());
      }
      Arrays.fill(text, '\0');
    }
    BkvException e =
        assertThrows(BkvException.class, () -> BackupKey.parse("12zz".toCharArray()));
    assertEquals(Status.INVALID_ARGUMENT, e.status());
    assertTrue(Vault.libraryVersion().startsWith("0."));
  }

  @Test
  void backupAndRestoreWithProgress() throws Exception {
    Path src = randomFile("chat.db", 2_000_000, 1);
    try (Store store = Store.open("file://" + dir.resolve("store"));
        BackupKey key = BackupKey.generate()) {
      AtomicLong seen = new AtomicLong();
      String id = Backups.backup(store, key, src.toString(), (d, t) -> seen.set(d), null);
      assertEquals(32, id.length());
      assertTrue(seen.get() > 0);
      assertEquals(List.of(id), Backups.list(store, key));
      Path out = dir.resolve("restored");
      Backups.restore(store, key, id, out.toString(), null, null);
      assertArrayEquals(Files.readAllBytes(src), Files.readAllBytes(out));
      BkvException exists =
          assertThrows(
              BkvException.class, () -> Backups.restore(store, key, null, out.toString(), null, null));
      assertEquals(Status.ALREADY_EXISTS, exists.status());
      try (BackupKey other = BackupKey.generate()) {
        assertThrows(
            BkvException.WrongKey.class,
            () -> Backups.restore(store, other, null, dir.resolve("x").toString(), null, null));
      }
    }
    Store closed = Store.open("file://" + dir.resolve("s2"));
    closed.close();
    assertThrows(IllegalStateException.class, () -> Backups.list(closed, BackupKey.generate()));
  }

  /**
   * Passkey slots as an Android app uses them: the platform's PRF output goes in, the master key
   * comes out; another credential and another output are refused; the salt rotates.
   */
  @Test
  void passkeySlotOpensTheSetAndRotatesItsSalt() throws Exception {
    Path src = randomFile("chat.db", 200_000, 7);
    byte[] cred = {5, 6, 7, 8};
    byte[] out1 = new byte[32];
    byte[] out2 = new byte[32];
    Arrays.fill(out1, (byte) 1);
    Arrays.fill(out2, (byte) 2);
    try (Store store = Store.open("file://" + dir.resolve("slots"));
        BackupKey key = BackupKey.generate();
        SlotSecret byKey = SlotSecret.recoveryKey(key);
        SlotSecret byPasskey = SlotSecret.passkey(cred, out1);
        SlotSecret other = SlotSecret.passkey(new byte[] {9}, out1);
        SlotSecret newOutput = SlotSecret.passkey(cred, out2)) {
      String id = Backups.backup(store, key, src.toString(), null, null);
      byte[] salt = Slots.newSalt();
      byte[] slot = Slots.addPasskey(store, byKey, "localhost", cred, salt, out1);
      List<Slots.PasskeySlot> slots = Slots.passkeys(store);
      assertEquals(1, slots.size());
      assertArrayEquals(slot, slots.get(0).slotId());
      assertArrayEquals(cred, slots.get(0).credentialId());
      assertArrayEquals(salt, slots.get(0).salt());
      assertEquals("localhost", slots.get(0).rpId());
      try (BackupKey master = Slots.unlock(store, byPasskey)) {
        assertEquals(String.valueOf(key.format()), String.valueOf(master.format()));
        Path restored = dir.resolve("by-passkey");
        Backups.restore(store, master, id, restored.toString(), null, null);
        assertArrayEquals(Files.readAllBytes(src), Files.readAllBytes(restored));
      }
      assertThrows(BkvException.NotFound.class, () -> Slots.unlock(store, other));
      assertThrows(BkvException.WrongKey.class, () -> Slots.unlock(store, newOutput));
      Slots.rotatePasskeySalt(store, byPasskey, Slots.newSalt(), out2);
      assertThrows(BkvException.WrongKey.class, () -> Slots.unlock(store, byPasskey));
      Slots.unlock(store, newOutput).close();
      assertFalse(Slots.remove(store, byKey, slot));
      assertThrows(BkvException.NotFound.class, () -> Slots.unlock(store, newOutput));
    }
  }

  @Test
  void backupAndRestoreOnS3AndWebDav() throws Exception {
    Path src = randomFile("media.bin", 1_500_000, 4);
    String unique = "java-" + System.nanoTime();
    String[] urls = {
      "s3://" + env("BKV_TEST_S3_BUCKET") + "/" + unique + "?endpoint="
          + env("BKV_TEST_S3_ENDPOINT") + "&region=us-east-1",
      "webdav://" + env("BKV_TEST_WEBDAV_HOSTPORT") + "/sets/" + unique
    };
    for (String url : urls) {
      try (Store store = Store.open(url);
          BackupKey key = BackupKey.generate()) {
        String id = Backups.backup(store, key, src.toString(), null, null);
        Path out = dir.resolve("from-" + url.substring(0, 2));
        Backups.restore(store, key, id, out.toString(), null, null);
        assertArrayEquals(Files.readAllBytes(src), Files.readAllBytes(out), url);
      }
    }
  }

  @Test
  void callbackStoreInJavaRoundTripTamperAndErrors() throws Exception {
    Path src = randomFile("notes.bin", 3_000_000, 2);
    DirStore cloud = new DirStore(dir.resolve("cloud"));
    try (Store store = Store.fromCallbacks("drive:/bkv", cloud);
        BackupKey key = BackupKey.generate()) {
      String id = Backups.backup(store, key, src.toString(), null, null);
      Path out = dir.resolve("from-cloud");
      Backups.restore(store, key, id, out.toString(), null, null);
      assertArrayEquals(Files.readAllBytes(src), Files.readAllBytes(out));

      // A flipped bit in the backup object: refused, nothing left behind.
      Path object;
      try (var files = Files.list(cloud.root)) {
        object =
            files.filter(p -> p.getFileName().toString().startsWith("backup-")).findFirst().get();
      }
      byte[] bytes = Files.readAllBytes(object);
      bytes[bytes.length / 2] ^= 1;
      Files.write(object, bytes);
      Path tampered = dir.resolve("tampered");
      assertThrows(
          BkvException.Corrupted.class,
          () -> Backups.restore(store, key, id, tampered.toString(), null, null));
      assertFalse(Files.exists(tampered));

      cloud.down = true;
      BkvException.Unavailable e =
          assertThrows(
              BkvException.Unavailable.class,
              () -> Backups.backup(store, key, src.toString(), null, null));
      assertTrue(e.getMessage().contains("drive:/bkv"), e.getMessage());
      assertTrue(e.getMessage().contains("drive offline"), e.getMessage());
    }
  }

  @Test
  void cancellationFromAnotherThread() throws Exception {
    Path src = randomFile("big.bin", 12_000_000, 3);
    DirStore cloud = new DirStore(dir.resolve("cloud"));
    try (Store store = Store.fromCallbacks("drive:/bkv", cloud);
        BackupKey key = BackupKey.generate()) {
      String id = Backups.backup(store, key, src.toString(), null, null);
      // The listener runs on an SDK worker thread and cancels mid-backup.
      try (Cancel cancel = new Cancel()) {
        assertThrows(
            BkvException.Cancelled.class,
            () -> Backups.backup(store, key, src.toString(), (d, t) -> cancel.cancel(), cancel));
      }
      assertEquals(List.of(id), Backups.list(store, key));

      // The test thread cancels a restore running on another thread.
      ExecutorService pool = Executors.newSingleThreadExecutor();
      try (Cancel cancel = new Cancel()) {
        CountDownLatch started = new CountDownLatch(1);
        Path out = dir.resolve("cancelled");
        Future<?> restore =
            pool.submit(
                () -> {
                  Backups.restore(
                      store, key, id, out.toString(), (d, t) -> started.countDown(), cancel);
                  return null;
                });
        assertTrue(started.await(60, TimeUnit.SECONDS));
        cancel.cancel();
        Exception e = assertThrows(Exception.class, () -> restore.get(60, TimeUnit.SECONDS));
        assertTrue(e.getCause() instanceof BkvException.Cancelled, String.valueOf(e.getCause()));
        assertFalse(Files.exists(out));
      } finally {
        pool.shutdownNow();
      }
    }
  }

  Vault openVault(String tokenVar) throws BkvException {
    Vault.Options o = new Vault.Options();
    o.address = env("BKV_TEST_VAULT_ADDR");
    o.serverPublicKey = env("BKV_TEST_VAULT_KEY");
    o.accountToken = env(tokenVar);
    o.argon2Iterations = 2;
    o.argon2MemoryKib = 19456;
    o.argon2Parallelism = 1;
    return Vault.open(o);
  }

  @Test
  void vaultRegisterRecoverStatusChangePassword() throws Exception {
    char[] password = "pässwörd \uD83D\uDE00".toCharArray(); // non-ASCII, a surrogate pair
    try (Vault vault = openVault("BKV_TEST_VAULT_TOKEN_a");
        BackupKey key = BackupKey.generate()) {
      assertThrows(BkvException.NotFound.class, () -> vault.recover("java-a", password, null));
      vault.register("java-a", password, key, null);
      Vault.Status st = vault.status(null);
      assertEquals(Vault.State.ACTIVE, st.state());
      assertEquals(3, st.attemptsRemaining());

      BkvException.WrongPassword wrong =
          assertThrows(
              BkvException.WrongPassword.class,
              () -> vault.recover("java-a", "passwörd".toCharArray(), null));
      assertEquals(2, wrong.attemptsRemaining());
      assertEquals(BkvException.Attempt.SPENT, wrong.attempt());
      try (BackupKey got = vault.recover("java-a", password, null)) {
        assertArrayEquals(key.format(), got.format());
      }
      char[] next = "new password".toCharArray();
      assertEquals(3, vault.changePassword("java-a", password, next, null));
      try (BackupKey got = vault.recover("java-a", next, null)) {
        assertArrayEquals(key.format(), got.format());
      }
      assertThrows(
          BkvException.WrongPassword.class, () -> vault.recover("java-a", password, null));
    }
  }

  @Test
  void vaultLocksAfterTheLastAttemptAndCancelSpendsNone() throws Exception {
    try (Vault vault = openVault("BKV_TEST_VAULT_TOKEN_b");
        BackupKey key = BackupKey.generate()) {
      vault.register("java-b", "right".toCharArray(), key, null);
      try (Cancel cancel = new Cancel()) {
        cancel.cancel();
        BkvException.Cancelled c =
            assertThrows(
                BkvException.Cancelled.class,
                () -> vault.recover("java-b", "wrong".toCharArray(), cancel));
        assertEquals(BkvException.Attempt.NOT_SPENT, c.attempt());
      }
      assertEquals(3, vault.status(null).attemptsRemaining());
      for (int i = 0; i < 2; ++i) {
        assertThrows(
            BkvException.WrongPassword.class,
            () -> vault.recover("java-b", "wrong".toCharArray(), null));
      }
      assertThrows(
          BkvException.Locked.class, () -> vault.recover("java-b", "wrong".toCharArray(), null));
      assertThrows(
          BkvException.Locked.class, () -> vault.recover("java-b", "right".toCharArray(), null));
      assertEquals(Vault.State.LOCKED, vault.status(null).state());
    }
  }

  @Test
  void vaultRateLimitCarriesRetryAfter() throws Exception {
    Vault.Options o = new Vault.Options();
    o.address = env("BKV_TEST_LIMITED_VAULT_ADDR");
    o.serverPublicKey = env("BKV_TEST_LIMITED_VAULT_KEY");
    o.accountToken = env("BKV_TEST_LIMITED_VAULT_TOKEN");
    try (Vault vault = Vault.open(o)) {
      BkvException.RateLimited limited = null;
      for (int i = 0; i < 10 && limited == null; ++i) {
        try {
          vault.status(null);
        } catch (BkvException.RateLimited e) {
          limited = e;
        }
      }
      assertTrue(limited != null, "10 reads with a burst of 2 were never limited");
      assertTrue(limited.retryAfterMs() > 0);
      assertTrue(limited.retrySafe());
    }
  }

  @Test
  void unauthenticatedTokenIsTyped() throws Exception {
    try (Vault vault = openVault("BKV_TEST_VAULT_TOKEN_c")) {
      vault.setToken("not-a-token");
      BkvException e = assertThrows(BkvException.class, () -> vault.status(null));
      assertEquals(Status.VAULT_UNAUTHENTICATED, e.status());
    }
  }

  // Every bkv_status of bkv.h up to the last (22) has its own constant: a
  // missing one would read as INTERNAL (rthr3: 21 and 22 say which password
  // a realm password change left in force).
  @Test
  void everyCStatusHasItsConstant() {
    for (int code = 0; code <= 22; ++code) {
      assertEquals(code, Status.of(code).code, "bkv_status " + code);
    }
    assertEquals(Status.VAULT_PASSWORD_CHANGED_DEGRADED, Status.of(21));
    assertEquals(Status.VAULT_PASSWORD_CHANGE_UNKNOWN, Status.of(22));
  }
}
