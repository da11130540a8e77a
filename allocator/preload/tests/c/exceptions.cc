// exceptions.cc - C++ exceptions thrown and caught under the preload library.
//
// libtagalloc.so carries inert, hidden copies of the unwinder's entry points
// (allocator/preload/src/unwind.rs), so that it does not load libgcc_s.  This
// program checks that they stay private: its throws must reach the real
// unwinder in libgcc_s (a throw that bound to the library's copies would
// abort), while the exception objects, their messages and the vectors below
// come from tagalloc's malloc.  Two threads each throw and catch, through a
// few frames and a rethrow; one large vector is mapped on its own.
#include <cstdio>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

static void deep(int depth, int k)
{
    std::vector<int> frame(16 + k % 64, k); // a block freed during the unwind
    if (depth == 0) {
        throw std::runtime_error("exception " + std::to_string(k) + std::string(k % 200, 'x'));
    }
    deep(depth - 1, k);
}

static long worker(int id)
{
    long caught = 0;
    for (int k = 0; k < 20000; k++) {
        try {
            try {
                deep(k % 5, k + id);
            } catch (const std::runtime_error &) {
                throw; // rethrown through the outer handler
            }
        } catch (const std::exception &e) {
            if (std::string(e.what()).rfind("exception ", 0) == 0) {
                caught++;
            }
        }
    }
    return caught;
}

int main()
{
    std::vector<char> big(4 << 20, 1); // above the mmap threshold
    long a = 0, b = 0;
    std::thread t([&] { a = worker(1); });
    b = worker(2);
    t.join();
    long sum = 0;
    for (char c : big) {
        sum += c;
    }
    if (a != 20000 || b != 20000 || sum != (4 << 20)) {
        std::fprintf(stderr, "exceptions: caught %ld and %ld of 20000, sum %ld\n", a, b, sum);
        return 1;
    }
    std::printf("exceptions: %ld thrown and caught in 2 threads\n", a + b);
    return 0;
}
