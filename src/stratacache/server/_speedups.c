/* Compiled hot paths of ``stratacache serve`` (optional: see server/fastparse.py).
 *
 * parse_requests(data, max_bulk_len) -> (commands, end, stopped)
 *
 *   Reads the whole multibulk requests at the start of ``data`` that are in canonical form:
 *   "*<n>\r\n" then n times "$<len>\r\n<len bytes>\r\n", where <n> is 1..MAX_COUNT and <len>
 *   0..max_bulk_len, both written as Redis writes them (no sign, no leading zero). Returns
 *   the commands (lists of bytes), the offset where reading stopped, and ``stopped``: 0 when
 *   it stopped at the end of the data or inside a command that is canonical so far (the
 *   caller keeps those bytes for the next read), 1 when the bytes at ``end`` are anything
 *   else (an inline request, a protocol error, a limit): the caller's pure parser reads
 *   from there, so every error and every unusual form is the pure parser's. The commands
 *   returned are exactly what the pure parser returns for the same bytes.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

/* Longer commands go to the pure parser: a header allocates its list at once, so a client
 * must not make us allocate much for a command it never completes. */
#define MAX_COUNT 1024
#define MAX_DIGITS 18 /* fits in a long long; longer numbers go to the pure parser */

/* A canonical decimal at p (before end) ending with "\r\n". Returns:
 *   the number of bytes of the line (digits + CRLF) with *value set, when whole;
 *   0 when the line is canonical so far but not whole;
 *  -1 when it is not canonical. */
static Py_ssize_t
read_number(const char *p, const char *end, long long *value)
{
    const char *q = p;
    long long v = 0;
    if (q >= end)
        return 0;
    if (*q < '0' || *q > '9')
        return -1;
    if (*q == '0') {
        q++;
    } else {
        while (q < end && *q >= '0' && *q <= '9') {
            if (q - p >= MAX_DIGITS)
                return -1;
            v = v * 10 + (*q - '0');
            q++;
        }
    }
    if (q >= end)
        return 0;
    if (*q != '\r')
        return -1;
    q++;
    if (q >= end)
        return 0;
    if (*q != '\n')
        return -1;
    *value = v;
    return (q + 1) - p;
}

static PyObject *
parse_requests(PyObject *self, PyObject *args)
{
    Py_buffer view;
    long long max_bulk_len;
    if (!PyArg_ParseTuple(args, "y*L", &view, &max_bulk_len))
        return NULL;
    const char *base = (const char *)view.buf;
    const char *end = base + view.len;
    const char *p = base;
    int stopped = 0;
    PyObject *commands = PyList_New(0);
    if (commands == NULL)
        goto error;
    while (p < end) {
        const char *start = p;
        long long count, size;
        Py_ssize_t used;
        if (*p != '*') {
            stopped = 1;
            break;
        }
        used = read_number(p + 1, end, &count);
        if (used < 0 || (used > 0 && (count < 1 || count > MAX_COUNT))) {
            stopped = 1;
            break;
        }
        if (used == 0)
            break; /* partial */
        p += 1 + used;
        PyObject *command = PyList_New((Py_ssize_t)count);
        if (command == NULL)
            goto error;
        Py_ssize_t i;
        int partial = 0;
        for (i = 0; i < count; i++) {
            if (p >= end) {
                partial = 1;
                break;
            }
            if (*p != '$') {
                stopped = 1;
                break;
            }
            used = read_number(p + 1, end, &size);
            if (used < 0 || (used > 0 && size > max_bulk_len)) {
                stopped = 1;
                break;
            }
            if (used == 0) {
                partial = 1;
                break;
            }
            p += 1 + used;
            if (end - p < size + 2) {
                /* The data and its CRLF are not all here yet; what is here must not
                 * already break the form (a wrong byte where the CRLF goes). */
                if (end - p > size && p[size] != '\r')
                    stopped = 1;
                else
                    partial = 1;
                break;
            }
            if (p[size] != '\r' || p[size + 1] != '\n') {
                stopped = 1;
                break;
            }
            PyObject *arg = PyBytes_FromStringAndSize(p, (Py_ssize_t)size);
            if (arg == NULL) {
                Py_DECREF(command);
                goto error;
            }
            PyList_SET_ITEM(command, i, arg);
            p += size + 2;
        }
        if (stopped || partial) {
            Py_DECREF(command); /* unset items are NULL, which list dealloc skips */
            p = start;
            break;
        }
        if (PyList_Append(commands, command) < 0) {
            Py_DECREF(command);
            goto error;
        }
        Py_DECREF(command);
    }
    PyBuffer_Release(&view);
    PyObject *result = Py_BuildValue("(Nni)", commands, (Py_ssize_t)(p - base), stopped);
    return result;
error:
    Py_XDECREF(commands);
    PyBuffer_Release(&view);
    return NULL;
}

static PyMethodDef methods[] = {
    {"parse_requests", parse_requests, METH_VARARGS,
     "parse_requests(data, max_bulk_len) -> (commands, end, stopped): the canonical "
     "multibulk requests at the start of data (see the module's source)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "stratacache.server._speedups",
    "Compiled hot paths of stratacache serve (see server/fastparse.py).", -1, methods,
};

PyMODINIT_FUNC
PyInit__speedups(void)
{
    return PyModule_Create(&module);
}
