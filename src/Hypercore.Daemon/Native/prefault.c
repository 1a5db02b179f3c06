/*
 * Issue 15, goal 1 (bench/NOTES.md, prefault17): vistarad's Native AOT start writes ~9 MB of type data into the
 * zero-filled tail of its own image (.bss and .hydrated: the runtime's RehydrateData expands the compressed type data
 * there before Main). Touched one 4 KB page at a time, that is ~2,300 page faults. On a host where a page fault traps
 * to the hypervisor (this benchmark machine, a paravirtualized guest: ~14 us per first touch of a page, measured with
 * a loop over fresh pages) those faults were ~20 % of the start's CPU.
 *
 * This constructor runs before main, so before the runtime starts. It asks the kernel once for the whole tail: THP
 * where 2 MB pages fit (MADV_HUGEPAGE; the range is written whole anyway), then MADV_POPULATE_WRITE (Linux 5.14+),
 * which fills the range in one system call (~1.2 us per 4 KB page there). No behaviour changes: the pages are the
 * same zeroed private pages the faults would have made, a moment earlier. Every failure is ignored (an older kernel,
 * THP off), and then the start is as it was.
 *
 * HYPERCORE_PREFAULT=0 in the environment turns it off (the benchmark's comparison row does). What it did is read back
 * by the daemon's start-cost log line (Hosting/ImagePrefault.cs, hypercore_prefault_result below).
 */
#define _GNU_SOURCE
#include <link.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

/* -1: turned off; otherwise the bytes populated and the time the walk and its madvise calls took. */
static long prefault_bytes = -1;
static long prefault_nanoseconds;

static long now_nanoseconds(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1000000000L + t.tv_nsec;
}

static int prefault_zero_tail(struct dl_phdr_info *info, size_t size, void *data)
{
    (void)size;
    (void)data;
    if (info->dlpi_name != NULL && info->dlpi_name[0] != '\0')
    {
        return 0; /* a shared library: only the executable itself (the first entry, with an empty name) */
    }

    unsigned long page = (unsigned long)sysconf(_SC_PAGESIZE);
    for (int i = 0; i < info->dlpi_phnum; i++)
    {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type != PT_LOAD || (ph->p_flags & PF_W) == 0 || ph->p_memsz <= ph->p_filesz)
        {
            continue;
        }

        /* The part past the file's bytes: anonymous, zero-filled (.bss, .hydrated). The page holding the file's last
           bytes is file-backed and left alone. */
        unsigned long start = (info->dlpi_addr + ph->p_vaddr + ph->p_filesz + page - 1) & ~(page - 1);
        unsigned long end = (info->dlpi_addr + ph->p_vaddr + ph->p_memsz + page - 1) & ~(page - 1);
        if (end <= start)
        {
            continue;
        }

        (void)madvise((void *)start, end - start, MADV_HUGEPAGE);
        if (madvise((void *)start, end - start, MADV_POPULATE_WRITE) == 0)
        {
            prefault_bytes += (long)(end - start);
        }
    }

    return 1; /* the executable is done */
}

__attribute__((constructor)) static void hypercore_prefault(void)
{
    const char *setting = getenv("HYPERCORE_PREFAULT");
    if (setting != NULL && strcmp(setting, "0") == 0)
    {
        return;
    }

    long started = now_nanoseconds();
    prefault_bytes = 0;
    dl_iterate_phdr(prefault_zero_tail, NULL);
    prefault_nanoseconds = now_nanoseconds() - started;
}

/* For the daemon (a direct P/Invoke, Hosting/ImagePrefault.cs): the bytes populated (-1 when turned off) and the
   nanoseconds it took. */
long hypercore_prefault_result(long *nanoseconds)
{
    *nanoseconds = prefault_nanoseconds;
    return prefault_bytes;
}
