/* session_input: what a fuzz_session input means, shared by the harness
 * (fuzz_session.c) and the seed writer (gen_session_seeds.c).
 *
 * Byte 0 picks the mode (SI_MODE_* below):
 *   bit 0 clear  RAW: the other bytes go to the receiver's socket as they
 *                are (the handshake's parsing is what gets fuzzed);
 *   bit 0 set    AUTHENTICATED: the harness first makes a correct protocol-3
 *                handshake as a sender holding SI_SECRET (bit 1 set: offering
 *                AES-256-GCM where the CPU has it, else XChaCha20-Poly1305),
 *                then sends the other bytes as frames.
 * In AUTHENTICATED mode the rest is a list of
 *   [u8 flags][u16 big-endian length][length bytes: one frame]
 * (a length past the input's end is cut to what is there). Each frame goes
 * out in its own sealed record unless SI_CLEAR says otherwise; the flags
 * let the fuzzer reach past checks it cannot satisfy by chance. */
#ifndef XFER_FUZZ_SESSION_INPUT_H
#define XFER_FUZZ_SESSION_INPUT_H

#define SI_SECRET "fuzz-session-secret"

#define SI_MODE_AUTH 0x01
#define SI_MODE_AES 0x02
/* Before connecting, the first two records (not sent) leave what a cut
 * transfer leaves in .xfer: the first is an OFFER naming the file, the
 * second the partial's bytes, journaled as confirmed when they are the whole
 * file (SI_FIX_HASH in the second's flags: with the right chunk hash and
 * state; without, the partial reads back damaged). Any mode. */
#define SI_MODE_PARTIAL 0x04
/* Then (after PARTIAL's, if both) two more records: an OFFER naming a file
 * and its bytes, which are put under that name in the receiver's directory
 * as a finished file, so an OFFER of the same size gets NEED_HASH; a
 * FILE_HASH with SI_FIX_HASH then carries its hash until an END is fixed. */
#define SI_MODE_EXISTING 0x08
/* The receiver runs with --overwrite. */
#define SI_MODE_OVERWRITE 0x10

/* Wait until the receiver has read everything and its file jobs have
 * landed before the next frame (as a real sender waits for ACCEPT); without
 * it the next frame may arrive while the receiver is still busy. */
#define SI_SETTLE 0x01
/* Set the frame header's length field to the frame's real payload length. */
#define SI_FIX_LEN 0x02
/* Fill in hashes the fuzzer cannot guess: DATA's chunk hash (and its bytes
 * count toward the file: a DATA at offset 0 starts the file over, as after
 * any REWIND of a file under 1 MiB), END's file hash (XXH3-128 of the DATA
 * bytes fixed since), FILE_HASH's (that of the last END fixed). */
#define SI_FIX_HASH 0x04
/* Send the frame in the clear, not sealed: a forgery after the handshake. */
#define SI_CLEAR 0x08
/* Run the receiver's loop once without waiting: whatever has finished (a
 * job, a read) lands before the next frame, the rest later. Between no flag
 * and SI_SETTLE, so the fuzzer can interleave jobs with frames. */
#define SI_STEP 0x10

#define SI_REC_HDR 3

#endif
