/* err: xfer's error codes. Functions return 0 (or a count) on success and a
 * negative code on failure: either -errno (libuv's UV_E* are the same values)
 * or one of the XFER_E* below, which start at -1000 so they never collide. */
#ifndef XFER_ERR_H
#define XFER_ERR_H

enum xfer_err {
    XFER_EPARTIAL = -1000, /* need more bytes before the frame is complete */
    XFER_EPROTO = -1001,   /* malformed or unexpected frame */
    XFER_ETOOBIG = -1002,  /* a length field is past its protocol maximum */
    XFER_EMAGIC = -1003,   /* the peer does not speak xfer */
    XFER_EVERSION = -1004, /* the peer speaks another protocol version */
    XFER_ECORRUPT = -1005, /* a checksum or hash did not match */
    XFER_ENAME = -1006,    /* a file name is not acceptable */
    XFER_ETIMEDOUT = -1007, /* the peer went silent */
    XFER_ESTATEDIR = -1008, /* the state directory is open to other users */
    XFER_ELINKED = -1009,   /* a state file has other links or another owner */
    XFER_ESTALLED = -1010  /* the peer stopped reading what we send it */
};

/* Returns a static description of any code this project produces. */
const char *xfer_strerror(int err);

#endif
