package dev.bkv;

import java.util.ArrayList;
import java.util.HexFormat;
import java.util.List;

/**
 * A set's key slots (docs/backup-format.md, "Keyring"): one master key, several ways in. {@link
 * #unlock} returns the master key every other call takes. Changes re-upload nothing; removing a
 * slot cannot take the master key back from whoever unwrapped it (docs/threat-model.md). Calls
 * block; run them off the UI thread.
 */
public final class Slots {
  private Slots() {}

  /** A passkey slot: what one assertion needs ({@code allowCredentials}, {@code evalByCredential}). */
  public record PasskeySlot(byte[] slotId, byte[] credentialId, byte[] salt, String rpId) {}

  /**
   * The master key. {@link BkvException.NotFound}: no slot for that secret (another passkey);
   * {@link BkvException.WrongKey}: its slot does not open (another salt).
   */
  public static BackupKey unlock(Store store, SlotSecret secret) throws BkvException {
    return BackupKey.adopt(Native.slotsUnlock(store.ptr(), secret.ptr()));
  }

  public static List<PasskeySlot> passkeys(Store store) throws BkvException {
    List<PasskeySlot> out = new ArrayList<>();
    HexFormat hex = HexFormat.of();
    for (String line : Native.slotsPasskeys(store.ptr()).split("\n")) {
      if (line.isEmpty()) continue;
      String[] f = line.split(" ", 4);
      out.add(
          new PasskeySlot(hex.parseHex(f[0]), hex.parseHex(f[1]), hex.parseHex(f[2]), f[3]));
    }
    return out;
  }

  /** 32 random bytes: a new passkey slot's PRF salt (eval.first at enrolment). */
  public static byte[] newSalt() throws BkvException {
    return Native.randomSalt();
  }

  /** Adds a passkey slot; returns its id. {@code opened} opens the set. */
  public static byte[] addPasskey(
      Store store,
      SlotSecret opened,
      String rpId,
      byte[] credentialId,
      byte[] salt,
      byte[] prfOutput)
      throws BkvException {
    return Native.slotsAddPasskey(
        store.ptr(), opened.ptr(), rpId, credentialId, salt, prfOutput);
  }

  /** Adds a slot for {@code newKey} (show it to the user); returns its id. */
  public static byte[] addRecoveryKey(Store store, SlotSecret opened, BackupKey newKey)
      throws BkvException {
    return Native.slotsAddRecoveryKey(store.ptr(), opened.ptr(), newKey.ptr());
  }

  /**
   * Removes a slot (not the last). True when its secret is the master key itself (a set from
   * before key slots): only a rekey locks its holder out.
   */
  public static boolean remove(Store store, SlotSecret opened, byte[] slotId)
      throws BkvException {
    return Native.slotsRemove(store.ptr(), opened.ptr(), slotId);
  }

  /** Salt rotation: both outputs from one assertion (eval first: old salt, second: new). */
  public static void rotatePasskeySalt(
      Store store, SlotSecret oldOutput, byte[] newSalt, byte[] newOutput) throws BkvException {
    Native.slotsRotatePasskeySalt(store.ptr(), oldOutput.ptr(), newSalt, newOutput);
  }
}
