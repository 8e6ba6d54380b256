/* The hot path of @monitor in C: the wrapper of a plain function whose every call is
 * kept (sample=1.0, otel_span=False).
 *
 * It does what otel_monitor._wrappers._python_inline_wrapper does, step for step, and
 * makes the same record tuple; that Python function stays the reference and the
 * fallback (tests run the wrapper's behaviour tests on both). What is rare or
 * unusual goes back to Python: arguments that need rendering (``captured``), joining
 * an OTel span's trace (``otel_parent``), a failing call (``fail``), a result that is
 * not a plain number (``result_text``), a full queue (``rt.overflow``), a start that
 * failed (``begin_failed``). C saves what no Python wrapper can: its own frame, the
 * packing of the arguments, and the bytecode between the steps.
 *
 * Like a Python function it binds as a method (__get__), carries a __dict__ (for
 * functools.wraps), takes weak references and pickles by its qualified name.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>
#include <pthread.h>
#include <sys/random.h>
#include <string.h>
#include <time.h>

#define AS_IS_MAX 8

typedef struct {
    PyObject_HEAD
    vectorcallfunc vectorcall;
    PyObject *dict;
    PyObject *weakreflist;
    PyObject *fn;
    PyObject *rt;            /* the pipeline: ready, ensure_started, fast_limit, overflow */
    PyObject *queue;         /* the pipeline's deque */
    PyObject *append;        /* queue.append */
    PyObject *process;
    PyObject *prefixes;      /* tuple of prefixes by argument count, or None */
    Py_ssize_t npos;
    PyObject *captured;      /* (args, kwargs) -> (inputs, spent), or None: no inputs */
    PyObject *fail;
    PyObject *result_text;
    PyObject *begin_failed;
    PyObject *ok_failed;
    PyObject *current;       /* the CURRENT ContextVar */
    PyObject *otel_now;      /* the OTel context's ContextVar, or () -> the current OTel
                                context (falsy when empty) */
    PyObject *otel_parent;   /* () -> (trace_id, span_id) of a valid current span, or None */
    PyObject *now;           /* time.time_ns (read by clock_gettime), or a clock to call */
    int now_is_time_ns;
    PyObject *as_is;         /* frozenset of types recorded as they are */
    PyTypeObject *as_is_types[AS_IS_MAX];  /* the same types, when no more than AS_IS_MAX */
    int n_as_is;             /* how many; -1: too many, ask the frozenset */
    PyObject *ok_outcome;
    int log_outputs;
    int as_is_result;
} Wrapper;

static PyObject *str_ready, *str_ensure_started, *str_fast_limit, *str_overflow,
    *str_qualname, *int_zero;

/* time.time_ns(), without the call when the clock is time.time_ns itself. */
static PyObject *
clock_ns(Wrapper *w)
{
    struct timespec ts;
    if (!w->now_is_time_ns || clock_gettime(CLOCK_REALTIME, &ts) != 0)
        return PyObject_CallNoArgs(w->now);
    return PyLong_FromLongLong((long long)ts.tv_sec * 1000000000LL + ts.tv_nsec);
}

/* Span and trace ids: xoshiro256** seeded from the OS's entropy at import and again in
 * every child after a fork (pthread_atfork), so a forked worker never repeats its
 * parent's ids. random.getrandbits cost two calls and a 128-bit int's making each
 * call, a third of the wrapper's own time. The GIL guards the state. */
static uint64_t id_state[4];

static uint64_t
rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

static uint64_t
next_bits(void)
{
    uint64_t result = rotl(id_state[1] * 5, 7) * 9;
    uint64_t t = id_state[1] << 17;
    id_state[2] ^= id_state[0];
    id_state[3] ^= id_state[1];
    id_state[1] ^= id_state[2];
    id_state[0] ^= id_state[3];
    id_state[2] ^= t;
    id_state[3] = rotl(id_state[3], 45);
    return result;
}

static void
seed_ids(void)
{
    uint64_t seed[4] = {0, 0, 0, 0};
    if (getrandom(seed, sizeof(seed), 0) != (ssize_t)sizeof(seed)) {
        struct timespec ts;  /* no entropy to be had (never expected): clock and pid */
        clock_gettime(CLOCK_REALTIME, &ts);
        seed[0] = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 30);
        seed[1] = (uint64_t)getpid() * 0x9E3779B97F4A7C15ULL;
    }
    for (int i = 0; i < 4; i++)
        id_state[i] = seed[i] ^ (0x9E3779B97F4A7C15ULL * (uint64_t)(i + 1));
}

/* A random id of 64 or 128 bits as a Python int, never 0 (0 means none). */
static PyObject *
random_id(int bits)
{
    if (bits == 64) {
        uint64_t id;
        while ((id = next_bits()) == 0)
            ;
        return PyLong_FromUnsignedLongLong(id);
    }
    uint64_t halves[2];
    do {
        halves[0] = next_bits();
        halves[1] = next_bits();
    } while (halves[0] == 0 && halves[1] == 0);
    return _PyLong_FromByteArray((const unsigned char *)halves, 16, PY_LITTLE_ENDIAN, 0);
}

/* A tuple of ours whose items hold no tracked container can never be part of a
 * reference cycle: it leaves the cyclic GC at once. Queued records otherwise sit in
 * every collection until the writer takes them; scanning them was about 40% of the
 * wrapper's instructions (callgrind), and a long queue made every full collection
 * walk it. CPython does the same to such tuples, but only when a collection reaches
 * them. Inner tuples first: an outer one is left tracked while an inner one is. */
static void
untrack_if_atomic(PyObject *tuple)
{
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(tuple); i++) {
        PyObject *item = PyTuple_GET_ITEM(tuple, i);
        /* the flag first: numbers and strings end the test without a call */
        if (PyType_HasFeature(Py_TYPE(item), Py_TPFLAGS_HAVE_GC)
                && PyObject_GC_IsTracked(item))
            return;
    }
    PyObject_GC_UnTrack(tuple);
}

/* Is ``type`` one of the types recorded as they are? Pointer compares against the
 * few types there are; the frozenset's hash lookups cost five times as much. */
static int
recorded_as_is(Wrapper *w, PyTypeObject *type)
{
    if (w->n_as_is < 0) {
        int found = PySet_Contains(w->as_is, (PyObject *)type);
        if (found < 0)
            PyErr_Clear();
        return found > 0;
    }
    for (int i = 0; i < w->n_as_is; i++)
        if (w->as_is_types[i] == type)
            return 1;
    return 0;
}

/* All positional arguments plain numbers, no keywords, no more than the signature's
 * positional parameters: recorded as they are, with no repr. */
static int
plain_arguments(Wrapper *w, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    if (w->prefixes == Py_None || (kwnames != NULL && PyTuple_GET_SIZE(kwnames))
            || nargs > w->npos)
        return 0;
    for (Py_ssize_t i = 0; i < nargs; i++)
        if (!recorded_as_is(w, Py_TYPE(args[i])))
            return 0;
    return 1;
}

static PyObject *
keywords_dict(PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    PyObject *kwargs = PyDict_New();
    if (kwargs == NULL || kwnames == NULL)
        return kwargs;
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(kwnames); i++) {
        if (PyDict_SetItem(kwargs, PyTuple_GET_ITEM(kwnames, i), args[nargs + i]) < 0) {
            Py_DECREF(kwargs);
            return NULL;
        }
    }
    return kwargs;
}

/* The call's start: the ids, the inputs, the context entered. On success *me holds a
 * new reference (NULL when the pipeline is not ready: the call is not recorded). */
static int
begin(Wrapper *w, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames,
      PyObject **me, PyObject **token, PyObject **parent_id, PyObject **inputs,
      PyObject **spent, PyObject **argtuple, PyObject **trace_id)
{
    PyObject *ready = PyObject_GetAttr(w->rt, str_ready);
    if (ready == NULL)
        return -1;
    int is_ready = PyObject_IsTrue(ready);
    Py_DECREF(ready);
    if (is_ready < 0)
        return -1;
    if (!is_ready) {
        PyObject *started = PyObject_CallMethodNoArgs(w->rt, str_ensure_started);
        if (started == NULL)
            return -1;
        is_ready = PyObject_IsTrue(started);
        Py_DECREF(started);
        if (is_ready <= 0)
            return is_ready;
    }

    PyObject *parent;
    if (PyContextVar_Get(w->current, NULL, &parent) < 0)
        return -1;
    if (parent == NULL || parent == Py_None) {
        Py_XDECREF(parent);
        PyObject *otel;
        if (PyContextVar_CheckExact(w->otel_now)) {
            if (PyContextVar_Get(w->otel_now, Py_None, &otel) < 0)
                return -1;
        }
        else if ((otel = PyObject_CallNoArgs(w->otel_now)) == NULL)
            return -1;
        int has_otel = PyObject_IsTrue(otel);
        Py_DECREF(otel);
        if (has_otel < 0)
            return -1;
        PyObject *joined = NULL;
        if (has_otel) {  /* an OTel context: a span in it, perhaps (join its trace) */
            joined = PyObject_CallNoArgs(w->otel_parent);
            if (joined == NULL)
                return -1;
        }
        if (joined != NULL && joined != Py_None) {
            *trace_id = Py_NewRef(PyTuple_GET_ITEM(joined, 0));
            *parent_id = Py_NewRef(PyTuple_GET_ITEM(joined, 1));
            Py_DECREF(joined);
        }
        else {
            Py_XDECREF(joined);
            *trace_id = random_id(128);
            if (*trace_id == NULL)
                return -1;
            *parent_id = Py_NewRef(int_zero);
        }
    }
    else {
        *trace_id = PySequence_GetItem(parent, 0);
        *parent_id = *trace_id ? PySequence_GetItem(parent, 1) : NULL;
        Py_DECREF(parent);
        if (*parent_id == NULL)
            return -1;
    }

    *argtuple = PyTuple_New(nargs);
    if (*argtuple == NULL)
        return -1;
    for (Py_ssize_t i = 0; i < nargs; i++)
        PyTuple_SET_ITEM(*argtuple, i, Py_NewRef(args[i]));
    if (plain_arguments(w, args, nargs, kwnames)) {  /* capture's first case, no repr */
        untrack_if_atomic(*argtuple);
        *inputs = PyTuple_Pack(2, PyTuple_GET_ITEM(w->prefixes, nargs), *argtuple);
        if (*inputs == NULL)
            return -1;
        untrack_if_atomic(*inputs);
        *spent = Py_NewRef(int_zero);
    }
    else if (w->captured != Py_None) {
        PyObject *kwargs = keywords_dict(args, nargs, kwnames);
        if (kwargs == NULL)
            return -1;
        PyObject *pair = PyObject_CallFunctionObjArgs(w->captured, *argtuple, kwargs, NULL);
        Py_DECREF(kwargs);
        if (pair == NULL)
            return -1;
        *inputs = Py_NewRef(PyTuple_GET_ITEM(pair, 0));
        *spent = Py_NewRef(PyTuple_GET_ITEM(pair, 1));
        Py_DECREF(pair);
    }
    else {
        *inputs = Py_NewRef(Py_None);
        *spent = Py_NewRef(int_zero);
    }

    PyObject *span_id = random_id(64);
    if (span_id == NULL)
        return -1;
    *me = PyTuple_Pack(3, *trace_id, span_id, Py_True);
    Py_DECREF(span_id);
    if (*me == NULL)
        return -1;
    untrack_if_atomic(*me);
    *token = PyContextVar_Set(w->current, *me);
    if (*token == NULL) {
        Py_CLEAR(*me);
        return -1;
    }
    return 0;
}

/* Calls a Python callable of ours for its effect, swallowing whatever it raises (at
 * the recursion limit, say): nothing of ours may replace what the function did. */
static void
call_quietly(PyObject *callable)
{
    PyObject *out = PyObject_CallNoArgs(callable);
    if (out == NULL)
        PyErr_Clear();
    Py_XDECREF(out);
}

static PyObject *
record_ok(Wrapper *w, PyObject *result, PyObject *me, PyObject *parent_id,
          PyObject *inputs, PyObject *spent, PyObject *start, PyObject *end)
{
    PyObject *output;
    if (!w->log_outputs)
        output = Py_NewRef(Py_None);
    else if (w->as_is_result && recorded_as_is(w, Py_TYPE(result)))
        output = Py_NewRef(result);
    else {
        PyObject *pair = PyObject_CallFunctionObjArgs(w->result_text, result, spent, NULL);
        if (pair == NULL)
            return NULL;
        output = PySequence_GetItem(pair, 0);
        Py_DECREF(pair);
        if (output == NULL)
            return NULL;
    }
    PyObject *record = PyTuple_New(11);
    if (record == NULL) {
        Py_DECREF(output);
        return NULL;
    }
    PyObject *items[11] = {w->process, PyTuple_GET_ITEM(me, 0), PyTuple_GET_ITEM(me, 1),
                           parent_id, start, end, w->ok_outcome, Py_None, inputs, NULL,
                           Py_None};
    for (int i = 0; i < 11; i++) {
        if (i == 9)
            PyTuple_SET_ITEM(record, i, output);  /* the new reference, given */
        else
            PyTuple_SET_ITEM(record, i, Py_NewRef(items[i]));
    }
    untrack_if_atomic(record);
    PyObject *limit = PyObject_GetAttr(w->rt, str_fast_limit);
    if (limit == NULL) {
        Py_DECREF(record);
        return NULL;
    }
    Py_ssize_t fast_limit = PyLong_AsSsize_t(limit);
    Py_DECREF(limit);
    if (fast_limit == -1 && PyErr_Occurred()) {
        Py_DECREF(record);
        return NULL;
    }
    Py_ssize_t depth = PyObject_Length(w->queue);
    PyObject *done;
    if (depth >= 0 && depth < fast_limit)
        done = PyObject_CallOneArg(w->append, record);
    else {
        PyErr_Clear();
        done = PyObject_CallMethodOneArg(w->rt, str_overflow, record);
    }
    Py_DECREF(record);
    return done;
}

static PyObject *
wrapper_vectorcall(PyObject *self, PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    Wrapper *w = (Wrapper *)self;
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    PyObject *me = NULL, *token = NULL, *parent_id = NULL, *inputs = NULL, *spent = NULL,
             *argtuple = NULL, *trace_id = NULL, *start = NULL;

    if (begin(w, args, nargs, kwnames, &me, &token, &parent_id, &inputs, &spent,
              &argtuple, &trace_id) == 0 && me != NULL) {
        start = clock_ns(w);
    }
    if (me == NULL || start == NULL) {  /* not ready, or recording the start failed */
        int failed = PyErr_Occurred() != NULL;
        PyErr_Clear();
        if (token != NULL && PyContextVar_Reset(w->current, token) < 0)
            PyErr_Clear();
        Py_CLEAR(me);
        if (failed)
            call_quietly(w->begin_failed);
    }
    Py_XDECREF(trace_id);

    PyObject *result = PyObject_Vectorcall(w->fn, args, nargsf, kwnames);
    if (result == NULL) {
        if (me != NULL) {
            PyObject *type, *value, *tb;
            PyErr_Fetch(&type, &value, &tb);
            PyErr_NormalizeException(&type, &value, &tb);
            if (tb != NULL && value != NULL)
                PyException_SetTraceback(value, tb);
            PyObject *call = Py_BuildValue("[OOOOOOOOO]", token, me, parent_id, inputs,
                                           start, Py_None, Py_None, spent, Py_None);
            PyObject *kwargs = call ? keywords_dict(args, nargs, kwnames) : NULL;
            PyObject *out = kwargs ? PyObject_CallFunctionObjArgs(
                w->fail, call, value ? value : Py_None, argtuple, kwargs, NULL) : NULL;
            if (out == NULL)
                PyErr_Clear();
            Py_XDECREF(out);
            Py_XDECREF(kwargs);
            Py_XDECREF(call);
            /* fail() leaves the call's context; if it could not, leave it here (a
             * token already used raises, and is no harm) */
            if (PyContextVar_Reset(w->current, token) < 0)
                PyErr_Clear();
            PyErr_Restore(type, value, tb);
        }
        goto done;
    }
    if (me == NULL)
        goto done;
    PyObject *end = clock_ns(w);
    if (PyContextVar_Reset(w->current, token) < 0)
        PyErr_Clear();  /* a ValueError: the call came back in another context */
    PyObject *done = end ? record_ok(w, result, me, parent_id, inputs, spent, start, end)
                         : NULL;
    Py_XDECREF(end);
    if (done == NULL) {
        PyErr_Clear();
        call_quietly(w->ok_failed);
    }
    Py_XDECREF(done);

done:
    Py_XDECREF(me);
    Py_XDECREF(token);
    Py_XDECREF(parent_id);
    Py_XDECREF(inputs);
    Py_XDECREF(spent);
    Py_XDECREF(argtuple);
    Py_XDECREF(start);
    return result;
}

static PyObject *
wrapper_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    static char *names[] = {
        "fn", "rt", "queue", "process", "prefixes", "npos", "captured", "fail",
        "result_text", "begin_failed", "ok_failed", "current", "otel_now", "otel_parent",
        "now", "as_is", "ok_outcome", "log_outputs", "as_is_result", NULL};
    Wrapper *w = (Wrapper *)type->tp_alloc(type, 0);
    if (w == NULL)
        return NULL;
    if (!PyArg_ParseTupleAndKeywords(
            args, kwargs, "$OOOOOnOOOOOOOOOOOpp", names, &w->fn, &w->rt, &w->queue,
            &w->process, &w->prefixes, &w->npos, &w->captured, &w->fail, &w->result_text,
            &w->begin_failed, &w->ok_failed, &w->current, &w->otel_now, &w->otel_parent,
            &w->now, &w->as_is, &w->ok_outcome, &w->log_outputs,
            &w->as_is_result)) {
        w->fn = w->rt = w->queue = w->process = w->prefixes = w->captured = NULL;
        w->fail = w->result_text = w->begin_failed = w->ok_failed = w->current = NULL;
        w->otel_now = w->otel_parent = w->now = w->as_is = NULL;
        w->ok_outcome = NULL;
        Py_DECREF(w);
        return NULL;
    }
    PyObject **fields[] = {&w->fn, &w->rt, &w->queue, &w->process, &w->prefixes,
                           &w->captured, &w->fail, &w->result_text, &w->begin_failed,
                           &w->ok_failed, &w->current, &w->otel_now, &w->otel_parent,
                           &w->now, &w->as_is, &w->ok_outcome};
    for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++)
        Py_INCREF(*fields[i]);
    if (!PyContextVar_CheckExact(w->current) || !PyFrozenSet_Check(w->as_is)
            || (w->prefixes != Py_None && (!PyTuple_Check(w->prefixes)
                                           || PyTuple_GET_SIZE(w->prefixes) <= w->npos))) {
        PyErr_SetString(PyExc_TypeError,
                        "current must be a ContextVar, as_is a frozenset, prefixes None "
                        "or a tuple of npos + 1 prefixes");
        Py_DECREF(w);
        return NULL;
    }
    w->n_as_is = PySet_GET_SIZE(w->as_is) > AS_IS_MAX ? -1 : 0;
    PyObject *types = w->n_as_is < 0 ? NULL : PyObject_GetIter(w->as_is);
    for (PyObject *type; types != NULL && (type = PyIter_Next(types)) != NULL; Py_DECREF(type))
        if (PyType_Check(type))  /* kept alive by as_is */
            w->as_is_types[w->n_as_is++] = (PyTypeObject *)type;
    Py_XDECREF(types);
    if (PyErr_Occurred()) {
        Py_DECREF(w);
        return NULL;
    }
    if (w->prefixes != Py_None) {  /* tuples of names: let the inputs built on them go */
        for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(w->prefixes); i++)
            if (PyTuple_CheckExact(PyTuple_GET_ITEM(w->prefixes, i)))
                untrack_if_atomic(PyTuple_GET_ITEM(w->prefixes, i));
    }
    w->append = PyObject_GetAttrString(w->queue, "append");
    if (w->append == NULL) {
        Py_DECREF(w);
        return NULL;
    }
    PyObject *time_module = PyImport_ImportModule("time");
    if (time_module == NULL) {
        Py_DECREF(w);
        return NULL;
    }
    PyObject *time_ns = PyObject_GetAttrString(time_module, "time_ns");
    Py_DECREF(time_module);
    if (time_ns == NULL) {
        Py_DECREF(w);
        return NULL;
    }
    w->now_is_time_ns = w->now == time_ns;
    Py_DECREF(time_ns);
    w->vectorcall = wrapper_vectorcall;
    return (PyObject *)w;
}

static int
wrapper_traverse(Wrapper *w, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(w));
    Py_VISIT(w->dict);
    Py_VISIT(w->fn);
    Py_VISIT(w->rt);
    Py_VISIT(w->queue);
    Py_VISIT(w->append);
    Py_VISIT(w->process);
    Py_VISIT(w->prefixes);
    Py_VISIT(w->captured);
    Py_VISIT(w->fail);
    Py_VISIT(w->result_text);
    Py_VISIT(w->begin_failed);
    Py_VISIT(w->ok_failed);
    Py_VISIT(w->current);
    Py_VISIT(w->otel_now);
    Py_VISIT(w->otel_parent);
    Py_VISIT(w->now);
    Py_VISIT(w->as_is);
    Py_VISIT(w->ok_outcome);
    return 0;
}

static int
wrapper_clear(Wrapper *w)
{
    Py_CLEAR(w->dict);
    Py_CLEAR(w->fn);
    Py_CLEAR(w->rt);
    Py_CLEAR(w->queue);
    Py_CLEAR(w->append);
    Py_CLEAR(w->process);
    Py_CLEAR(w->prefixes);
    Py_CLEAR(w->captured);
    Py_CLEAR(w->fail);
    Py_CLEAR(w->result_text);
    Py_CLEAR(w->begin_failed);
    Py_CLEAR(w->ok_failed);
    Py_CLEAR(w->current);
    Py_CLEAR(w->otel_now);
    Py_CLEAR(w->otel_parent);
    Py_CLEAR(w->now);
    Py_CLEAR(w->as_is);
    Py_CLEAR(w->ok_outcome);
    return 0;
}

static void
wrapper_dealloc(Wrapper *w)
{
    PyTypeObject *type = Py_TYPE(w);  /* a heap type: each instance holds a reference */
    PyObject_GC_UnTrack(w);
    if (w->weakreflist != NULL)
        PyObject_ClearWeakRefs((PyObject *)w);
    wrapper_clear(w);
    type->tp_free((PyObject *)w);
    Py_DECREF(type);
}

/* A method of a class: bound to its instance, as a Python function is. */
static PyObject *
wrapper_get(PyObject *self, PyObject *obj, PyObject *type)
{
    if (obj == NULL || obj == Py_None)
        return Py_NewRef(self);
    return PyMethod_New(self, obj);
}

/* Pickled by reference, as a function is: by the name it has in its module. */
static PyObject *
wrapper_reduce(PyObject *self, PyObject *Py_UNUSED(ignored))
{
    return PyObject_GetAttr(self, str_qualname);
}

static PyObject *
wrapper_repr(Wrapper *w)
{
    PyObject *name = w->dict ? PyDict_GetItemWithError(w->dict, str_qualname) : NULL;
    if (name == NULL && PyErr_Occurred())
        return NULL;
    return PyUnicode_FromFormat("<monitored function %S at %p>",
                                name ? name : Py_None, w);
}

static PyMethodDef wrapper_methods[] = {
    {"__reduce__", wrapper_reduce, METH_NOARGS, NULL},
    {NULL, NULL, 0, NULL},
};

static PyMemberDef wrapper_members[] = {
    {"__weaklistoffset__", T_PYSSIZET, offsetof(Wrapper, weakreflist), READONLY},
    {"__dictoffset__", T_PYSSIZET, offsetof(Wrapper, dict), READONLY},
    {"__vectorcalloffset__", T_PYSSIZET, offsetof(Wrapper, vectorcall), READONLY},
    {NULL},
};

static PyGetSetDef wrapper_getset[] = {
    {"__dict__", PyObject_GenericGetDict, PyObject_GenericSetDict, NULL, NULL},
    {NULL},
};

static PyType_Slot wrapper_slots[] = {
    {Py_tp_doc, "A function monitored by @monitor (otel_monitor._fastcall)."},
    {Py_tp_new, wrapper_new},
    {Py_tp_dealloc, wrapper_dealloc},
    {Py_tp_traverse, wrapper_traverse},
    {Py_tp_clear, wrapper_clear},
    {Py_tp_call, PyVectorcall_Call},
    {Py_tp_descr_get, wrapper_get},
    {Py_tp_repr, wrapper_repr},
    {Py_tp_methods, wrapper_methods},
    {Py_tp_members, wrapper_members},
    {Py_tp_getset, wrapper_getset},
    {0, NULL},
};

static PyType_Spec wrapper_spec = {
    .name = "otel_monitor._fastcall.MonitoredFunction",
    .basicsize = sizeof(Wrapper),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_HAVE_VECTORCALL
             | Py_TPFLAGS_METHOD_DESCRIPTOR,
    .slots = wrapper_slots,
};

/* ---- sample="auto": the per-call decision (otel_monitor._sampling) -------------------
 * SamplerState holds what AutoSampler.keep reads and counts, and keep itself: about a
 * tenth of the Python method's time, so an "auto" call that is dropped costs less than
 * a kept call of the C hot path (bench_overhead.py). AutoSampler (Python) subclasses it
 * with the windows and the p99 (_close_window, _refresh_p99, head), which run at most a
 * few times a second. _sampling.PythonSamplerState is the same in Python: the reference
 * and the fallback. The constants are _sampling's (checked there at import). */
#define SUB_BITS 3
#define HISTOGRAM_BUCKETS ((64 << SUB_BITS) + (1 << SUB_BITS) + 1)
#define WINDOW_NS 1000000000LL

typedef struct {
    PyObject_HEAD
    double p;
    long long window_start;
    long long seen;
    long long forced;
    long long kept;
    double budget;
    Py_ssize_t slow_bucket;
    PyObject *random;        /* () -> float in [0, 1) */
    long long hist[HISTOGRAM_BUCKETS];
} SamplerState;

static PyObject *str_close_window;

static PyObject *
sampler_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    SamplerState *s = (SamplerState *)type->tp_alloc(type, 0);  /* zeroed */
    if (s == NULL)
        return NULL;
    s->p = 1.0;
    s->budget = 1.0;
    s->slow_bucket = HISTOGRAM_BUCKETS;  /* no duration reaches it: none forced as slow */
    PyObject *random_module = PyImport_ImportModule("random");
    s->random = random_module ? PyObject_GetAttrString(random_module, "random") : NULL;
    Py_XDECREF(random_module);
    if (s->random == NULL) {
        Py_DECREF(s);
        return NULL;
    }
    return (PyObject *)s;
}

static int
sampler_traverse(SamplerState *s, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(s));
    Py_VISIT(s->random);
    return 0;
}

static int
sampler_clear(SamplerState *s)
{
    Py_CLEAR(s->random);
    return 0;
}

static void
sampler_dealloc(SamplerState *s)
{
    PyTypeObject *type = Py_TYPE(s);
    PyObject_GC_UnTrack(s);
    sampler_clear(s);
    type->tp_free((PyObject *)s);
    Py_DECREF(type);
}

static Py_ssize_t
bucket_of(long long d)
{
    if (d < 16)
        return d > 0 ? (Py_ssize_t)d : 0;
    int b = 64 - __builtin_clzll((unsigned long long)d);  /* int.bit_length() */
    return ((Py_ssize_t)b << SUB_BITS) | ((d >> (b - SUB_BITS - 1)) & ((1 << SUB_BITS) - 1));
}

/* keep(start, end, failed=False) -> weight, 0.0 to drop: _sampling's
 * PythonSamplerState.keep, step for step. */
static PyObject *
sampler_keep(SamplerState *s, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs < 2 || nargs > 3) {
        PyErr_SetString(PyExc_TypeError, "keep(start, end, failed=False)");
        return NULL;
    }
    long long start = PyLong_AsLongLong(args[0]);
    long long end = start == -1 && PyErr_Occurred() ? -1 : PyLong_AsLongLong(args[1]);
    if (end == -1 && PyErr_Occurred())
        return NULL;
    int failed = nargs == 3 ? PyObject_IsTrue(args[2]) : 0;
    if (failed < 0)
        return NULL;
    Py_ssize_t idx = bucket_of(end - start);
    s->hist[idx] += 1;
    s->seen += 1;
    if (end - s->window_start >= WINDOW_NS || (double)s->kept >= s->budget) {
        PyObject *done = PyObject_CallMethodOneArg((PyObject *)s, str_close_window, args[1]);
        if (done == NULL)
            return NULL;
        Py_DECREF(done);
    }
    if (failed || idx > s->slow_bucket) {
        s->forced += 1;
        s->kept += 1;
        return PyFloat_FromDouble(1.0);
    }
    double p = s->p;
    if (p >= 1.0) {
        s->kept += 1;
        return PyFloat_FromDouble(1.0);
    }
    if (s->random == NULL) {  /* deleted */
        PyErr_SetString(PyExc_AttributeError, "_random");
        return NULL;
    }
    PyObject *drawn = PyObject_CallNoArgs(s->random);
    if (drawn == NULL)
        return NULL;
    double r = PyFloat_AsDouble(drawn);
    Py_DECREF(drawn);
    if (r == -1.0 && PyErr_Occurred())
        return NULL;
    if (r < p) {
        s->kept += 1;
        return PyFloat_FromDouble(1.0 / p);
    }
    return PyFloat_FromDouble(0.0);
}

/* The histogram as a list of counts (read when a window closes); set from one. */
static PyObject *
sampler_get_hist(SamplerState *s, void *Py_UNUSED(closure))
{
    PyObject *list = PyList_New(HISTOGRAM_BUCKETS);
    for (Py_ssize_t i = 0; list != NULL && i < HISTOGRAM_BUCKETS; i++) {
        PyObject *n = PyLong_FromLongLong(s->hist[i]);
        if (n == NULL)
            Py_CLEAR(list);
        else
            PyList_SET_ITEM(list, i, n);
    }
    return list;
}

static int
sampler_set_hist(SamplerState *s, PyObject *value, void *Py_UNUSED(closure))
{
    long long hist[HISTOGRAM_BUCKETS];
    PyObject *seq = value ? PySequence_Fast(value, "hist must be a sequence") : NULL;
    if (seq == NULL) {
        if (value == NULL)
            PyErr_SetString(PyExc_AttributeError, "hist cannot be deleted");
        return -1;
    }
    if (PySequence_Fast_GET_SIZE(seq) != HISTOGRAM_BUCKETS) {
        PyErr_Format(PyExc_ValueError, "hist must hold %d counts", HISTOGRAM_BUCKETS);
        Py_DECREF(seq);
        return -1;
    }
    for (Py_ssize_t i = 0; i < HISTOGRAM_BUCKETS; i++) {
        hist[i] = PyLong_AsLongLong(PySequence_Fast_GET_ITEM(seq, i));
        if (hist[i] == -1 && PyErr_Occurred()) {
            Py_DECREF(seq);
            return -1;
        }
    }
    Py_DECREF(seq);
    memcpy(s->hist, hist, sizeof(hist));
    return 0;
}

static PyMethodDef sampler_methods[] = {
    {"keep", (PyCFunction)(void (*)(void))sampler_keep, METH_FASTCALL,
     "keep(start_ns, end_ns, failed=False) -> the call's weight, 0.0 to drop it"},
    {NULL, NULL, 0, NULL},
};

static PyMemberDef sampler_members[] = {
    {"p", T_DOUBLE, offsetof(SamplerState, p), 0, NULL},
    {"window_start", T_LONGLONG, offsetof(SamplerState, window_start), 0, NULL},
    {"seen", T_LONGLONG, offsetof(SamplerState, seen), 0, NULL},
    {"forced", T_LONGLONG, offsetof(SamplerState, forced), 0, NULL},
    {"kept", T_LONGLONG, offsetof(SamplerState, kept), 0, NULL},
    {"budget", T_DOUBLE, offsetof(SamplerState, budget), 0, NULL},
    {"slow_bucket", T_PYSSIZET, offsetof(SamplerState, slow_bucket), 0, NULL},
    {"_random", T_OBJECT_EX, offsetof(SamplerState, random), 0, NULL},
    {NULL},
};

static PyGetSetDef sampler_getset[] = {
    {"hist", (getter)sampler_get_hist, (setter)sampler_set_hist, NULL, NULL},
    {NULL},
};

static PyType_Slot sampler_slots[] = {
    {Py_tp_doc, "What sample=\"auto\" counts per call, and keep() (otel_monitor._sampling)."},
    {Py_tp_new, sampler_new},
    {Py_tp_dealloc, sampler_dealloc},
    {Py_tp_traverse, sampler_traverse},
    {Py_tp_clear, sampler_clear},
    {Py_tp_methods, sampler_methods},
    {Py_tp_members, sampler_members},
    {Py_tp_getset, sampler_getset},
    {0, NULL},
};

static PyType_Spec sampler_spec = {
    .name = "otel_monitor._fastcall.SamplerState",
    .basicsize = sizeof(SamplerState),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_BASETYPE,
    .slots = sampler_slots,
};

static int
fastcall_exec(PyObject *module)
{
    str_ready = PyUnicode_InternFromString("ready");
    str_ensure_started = PyUnicode_InternFromString("ensure_started");
    str_fast_limit = PyUnicode_InternFromString("fast_limit");
    str_overflow = PyUnicode_InternFromString("overflow");
    str_qualname = PyUnicode_InternFromString("__qualname__");
    str_close_window = PyUnicode_InternFromString("_close_window");
    int_zero = PyLong_FromLong(0);
    if (!str_close_window || !str_ready || !str_ensure_started || !str_fast_limit || !str_overflow
            || !str_qualname || !int_zero)
        return -1;
    seed_ids();
    /* once per process (a module's exec may run again in a subinterpreter) */
    static int atfork_registered = 0;
    if (!atfork_registered) {
        if (pthread_atfork(NULL, NULL, seed_ids) != 0) {
            PyErr_SetString(PyExc_OSError, "pthread_atfork failed");
            return -1;
        }
        atfork_registered = 1;
    }
    PyObject *type = PyType_FromModuleAndSpec(module, &wrapper_spec, NULL);
    if (type == NULL || PyModule_AddObject(module, "MonitoredFunction", type) < 0) {
        Py_XDECREF(type);
        return -1;
    }
    PyObject *sampler = PyType_FromModuleAndSpec(module, &sampler_spec, NULL);
    if (sampler == NULL || PyModule_AddObject(module, "SamplerState", sampler) < 0) {
        Py_XDECREF(sampler);
        return -1;
    }
    return PyModule_AddIntConstant(module, "HISTOGRAM_BUCKETS", HISTOGRAM_BUCKETS);
}

static PyModuleDef_Slot fastcall_slots[] = {
    {Py_mod_exec, fastcall_exec},
    {0, NULL},
};

static struct PyModuleDef fastcall_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "otel_monitor._fastcall",
    .m_doc = "The wrapper of @monitor's hot path (see _wrappers._inline_sync_wrapper).",
    .m_size = 0,
    .m_slots = fastcall_slots,
};

PyMODINIT_FUNC
PyInit__fastcall(void)
{
    return PyModuleDef_Init(&fastcall_module);
}
