/* ring: a small MPI job whose answer is known in advance, for the apps
 * tests (issue 13). Every iteration each rank passes a block of BLOCK
 * 64-bit words to its right neighbour (a ring exchange, big enough that
 * shared-memory transports use their single-copy path), mixes what it
 * received into its own block, and all ranks agree on a checksum with
 * MPI_Allreduce. Everything is integer arithmetic, so the final checksum
 * depends only on the rank count and the iteration count, never on timing:
 * an interrupted and restored run must print the same line as one that was
 * never interrupted.
 *
 *   ring ITERATIONS SLEEP_US
 *
 * Rank 0 prints "iter N" every 10 iterations (so a test sees the job under
 * way) and "result ranks=R iters=I checksum=X" at the end. SLEEP_US is a
 * pause per iteration that keeps the job running long enough to be dumped
 * in the middle; the job takes about ITERATIONS * SLEEP_US in all. */
#include <mpi.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#define BLOCK 16384 /* words: 128 KiB per message */

static uint64_t mix(uint64_t x) {
  /* splitmix64's finaliser: a cheap, well-spread bijection */
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ULL;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebULL;
  x ^= x >> 31;
  return x;
}

int main(int argc, char **argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: ring ITERATIONS SLEEP_US\n");
    return 2;
  }
  long iters = atol(argv[1]);
  long pause_us = atol(argv[2]);
  MPI_Init(&argc, &argv);
  int rank, size;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  uint64_t *mine = malloc(BLOCK * sizeof(uint64_t));
  uint64_t *got = malloc(BLOCK * sizeof(uint64_t));
  if (!mine || !got) MPI_Abort(MPI_COMM_WORLD, 1);
  for (int i = 0; i < BLOCK; i++) mine[i] = mix(((uint64_t)rank << 32) | (uint64_t)i);
  int right = (rank + 1) % size, left = (rank + size - 1) % size;
  uint64_t checksum = 0;
  for (long it = 0; it < iters; it++) {
    MPI_Sendrecv(mine, BLOCK, MPI_UINT64_T, right, (int)(it & 0x7fff), got, BLOCK,
                 MPI_UINT64_T, left, (int)(it & 0x7fff), MPI_COMM_WORLD, MPI_STATUS_IGNORE);
    uint64_t local = 0;
    for (int i = 0; i < BLOCK; i++) {
      mine[i] = mix(mine[i] ^ got[(i + it) % BLOCK]) + (uint64_t)it;
      local += mine[i];
    }
    uint64_t sum = 0;
    MPI_Allreduce(&local, &sum, 1, MPI_UINT64_T, MPI_SUM, MPI_COMM_WORLD);
    checksum = mix(checksum ^ sum);
    if (rank == 0 && (it + 1) % 10 == 0) {
      printf("iter %ld\n", it + 1);
      fflush(stdout);
    }
    if (pause_us > 0) usleep((useconds_t)pause_us);
  }
  if (rank == 0) {
    printf("result ranks=%d iters=%ld checksum=%016llx\n", size, iters,
           (unsigned long long)checksum);
    fflush(stdout);
  }
  free(mine);
  free(got);
  MPI_Finalize();
  return 0;
}
