/*
 * What a WAL commit's write calls cost on this host (issue 15, twenty-first pass; bench/NOTES.md "s21").
 * Appends COMMITS commits of 35 frames (a 24-byte header + a 4,096-byte page each, SQLite's WAL frame) to FILE and
 * fsyncs after each, either as SQLite's default VFS writes them (two pwrite64 per frame) or as WalGatheringVfs does
 * (the commit's bytes in one call), and prints the process CPU per commit and the fsync's part of it.
 *
 *   clang -O2 -o /tmp/wal-write-calls bench/wal-write-calls.c
 *   /tmp/wal-write-calls 0 1000 /var/tmp/wal-write-calls.wal   # two calls per frame
 *   /tmp/wal-write-calls 1 1000 /var/tmp/wal-write-calls.wal   # one call per commit
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

enum { FRAMES = 35, HEADER = 24, PAGE = 4096, FRAME = HEADER + PAGE };

static double cpu_seconds(void)
{
    struct timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: %s 0|1 COMMITS FILE  (0: two pwrite64 per frame, 1: one per commit)\n", argv[0]);
        return 2;
    }
    int gathered = atoi(argv[1]), commits = atoi(argv[2]);
    int fd = open(argv[3], O_CREAT | O_RDWR | O_TRUNC, 0600);
    if (fd < 0) { perror(argv[3]); return 1; }
    char header[HEADER], page[PAGE], *commit = malloc((size_t)FRAMES * FRAME);
    memset(header, 3, sizeof header);
    memset(page, 7, sizeof page);
    double start = cpu_seconds(), in_fsync = 0;
    long offset = 32;
    for (int c = 0; c < commits; c++) {
        if (offset > 8000L * FRAME) offset = 32; /* the WAL starts over, as the store's does near 8,000 frames */
        if (!gathered) {
            for (int f = 0; f < FRAMES; f++, offset += FRAME) {
                if (pwrite(fd, header, HEADER, offset) != HEADER || pwrite(fd, page, PAGE, offset + HEADER) != PAGE) { perror("pwrite"); return 1; }
            }
        } else {
            for (int f = 0; f < FRAMES; f++) {
                memcpy(commit + (size_t)f * FRAME, header, HEADER);
                memcpy(commit + (size_t)f * FRAME + HEADER, page, PAGE);
            }
            if (pwrite(fd, commit, (size_t)FRAMES * FRAME, offset) != FRAMES * FRAME) { perror("pwrite"); return 1; }
            offset += (long)FRAMES * FRAME;
        }
        double before = cpu_seconds();
        if (fsync(fd) != 0) { perror("fsync"); return 1; }
        in_fsync += cpu_seconds() - before;
    }
    double total = cpu_seconds() - start;
    printf("%s: %.1f us of CPU per commit of %d frames (fsync %.1f)\n", gathered ? "one call per commit" : "two calls per frame",
           1e6 * total / commits, FRAMES, 1e6 * in_fsync / commits);
    close(fd);
    unlink(argv[3]);
    free(commit);
    return 0;
}
