#include <string.h>

#include <uv.h>

#include "xfer/err.h"

const char *xfer_strerror(int err)
{
    switch (err) {
    case XFER_EPARTIAL:
        return "incomplete frame";
    case XFER_EPROTO:
        return "protocol error";
    case XFER_ETOOBIG:
        return "length past the protocol maximum";
    case XFER_EMAGIC:
        return "peer does not speak the xfer protocol";
    case XFER_EVERSION:
        return "protocol version mismatch";
    case XFER_ECORRUPT:
        return "checksum mismatch";
    case XFER_ENAME:
        return "unacceptable file name";
    case XFER_ETIMEDOUT:
        return "peer went silent";
    case XFER_ESTATEDIR:
        return "state directory is open to other users";
    case XFER_ELINKED:
        return "state file has other links or another owner";
    case XFER_ESTALLED:
        return "peer stopped reading what it is sent";
    default:
        break;
    }
    if (err < 0 && err > -4096)
        return uv_strerror(err);
    return "unknown error";
}
