package dev.bkv;

/**
 * A backup key: 32 random bytes, shown to the user as 64 hex digits in 16 groups of 4. The key
 * lives in native, wiped memory; close() frees it. Not thread-safe.
 */
public final class BackupKey extends Handle {
  private BackupKey(long ptr) {
    super(ptr);
  }

  static BackupKey adopt(long ptr) {
    return new BackupKey(ptr);
  }

  public static BackupKey generate() throws BkvException {
    return new BackupKey(Native.keyGenerate());
  }

  /** Accepts any spacing, dashes and case. The binding wipes its copies of text. */
  public static BackupKey parse(char[] text) throws BkvException {
    return new BackupKey(Native.keyParse(text));
  }

  /** "xxxx xxxx ... xxxx" (79 chars). Secret: wipe it (Arrays.fill) once shown. */
  public char[] format() throws BkvException {
    return Native.keyFormat(ptr());
  }

  @Override
  void free(long ptr) {
    Native.keyFree(ptr);
  }
}
