/*
 * cfrac.c - many small, short-lived objects, as in the cfrac benchmark
 * (continued-fraction factoring over a bignum library that allocates every
 * intermediate result).
 *
 * Numbers are heap blocks of 32-bit limbs (16 to 64 bytes).  Each step
 * multiplies, adds and divides numbers from a small pool of long-lived
 * values; every operation allocates its result and the temporaries are freed
 * at once, mostly in LIFO order; now and then a result replaces a pool entry.
 *
 * Arguments: steps=N (default 1500000), pool=N (default 64).
 * Prints the number of allocations and a checksum of the remainders.
 */
#include "driver.h"

#define MAX_LIMBS 14

struct num {
    uint32_t len;
    uint32_t limb[];
};

static unsigned long long allocations;

static struct num *num_new(uint32_t len)
{
    if (len == 0)
        len = 1;
    struct num *n = xmalloc(sizeof(struct num) + (size_t)len * sizeof(uint32_t));
    n->len = len;
    allocations++;
    return n;
}

static void num_trim(struct num *n)
{
    while (n->len > 1 && n->limb[n->len - 1] == 0)
        n->len--;
}

static struct num *num_from(uint64_t v)
{
    struct num *n = num_new(2);
    n->limb[0] = (uint32_t)v;
    n->limb[1] = (uint32_t)(v >> 32);
    num_trim(n);
    return n;
}

static struct num *num_add(const struct num *a, const struct num *b)
{
    uint32_t len = (a->len > b->len ? a->len : b->len) + 1;
    if (len > MAX_LIMBS)
        len = MAX_LIMBS;
    struct num *r = num_new(len);
    uint64_t carry = 0;
    for (uint32_t i = 0; i < len; i++) {
        uint64_t s = carry;
        if (i < a->len)
            s += a->limb[i];
        if (i < b->len)
            s += b->limb[i];
        r->limb[i] = (uint32_t)s;
        carry = s >> 32;
    }
    num_trim(r);
    return r;
}

/* a * b modulo 2^(32 * cap) */
static struct num *num_mul(const struct num *a, const struct num *b, uint32_t cap)
{
    uint32_t len = a->len + b->len;
    if (len > cap)
        len = cap;
    struct num *r = num_new(len);
    memset(r->limb, 0, len * sizeof(uint32_t));
    for (uint32_t i = 0; i < a->len && i < len; i++) {
        uint64_t carry = 0;
        for (uint32_t j = 0; j < b->len && i + j < len; j++) {
            uint64_t t = (uint64_t)a->limb[i] * b->limb[j] + r->limb[i + j] + carry;
            r->limb[i + j] = (uint32_t)t;
            carry = t >> 32;
        }
        if (i + b->len < len)
            r->limb[i + b->len] = (uint32_t)carry;
    }
    num_trim(r);
    return r;
}

static struct num *num_divsmall(const struct num *a, uint32_t d, uint32_t *rem)
{
    struct num *q = num_new(a->len);
    uint64_t r = 0;
    for (uint32_t i = a->len; i-- > 0;) {
        uint64_t cur = (r << 32) | a->limb[i];
        q->limb[i] = (uint32_t)(cur / d);
        r = cur % d;
    }
    *rem = (uint32_t)r;
    num_trim(q);
    return q;
}

int main(int argc, char **argv)
{
    check_args(argc, argv, "steps pool");
    long steps = arg(argc, argv, "steps", 1500000);
    long pool_len = arg(argc, argv, "pool", 64);
    if (pool_len < 2)
        die("pool must be at least 2");
    struct rng rng = {42};
    struct num **pool = xmalloc((size_t)pool_len * sizeof *pool);
    for (long i = 0; i < pool_len; i++)
        pool[i] = num_from(rng_next(&rng));
    uint64_t sum = 0;
    for (long s = 0; s < steps; s++) {
        struct num *x = pool[rng_below(&rng, (uint64_t)pool_len)];
        struct num *y = pool[rng_below(&rng, (uint64_t)pool_len)];
        uint32_t cap = 2 + (uint32_t)(s % (MAX_LIMBS - 1));
        uint32_t d = 3 + (uint32_t)rng_below(&rng, 1000), r1, r2;
        struct num *t1 = num_mul(x, y, cap);
        struct num *t2 = num_add(t1, x);
        struct num *t3 = num_divsmall(t2, d, &r1);
        struct num *k = num_from(r1 + s);
        struct num *t4 = num_add(t3, k);
        free(k);
        struct num *t5 = num_divsmall(t4, d + 2, &r2);
        free(t4);
        free(t2);
        free(t1);
        sum = sum * 31 + r1 + r2;
        if ((s & 3) == 0) {
            long i = (long)rng_below(&rng, (uint64_t)pool_len);
            free(pool[i]);
            pool[i] = t5;
        } else {
            free(t5);
        }
        free(t3);
    }
    for (long i = 0; i < pool_len; i++)
        free(pool[i]);
    free(pool);
    printf("cfrac: %llu allocations, checksum %016llx\n", allocations, (unsigned long long)sum);
    return 0;
}
