/* mpi.c — imcap_train_comm over MPI (see mpi.h). */
#include <stdio.h>
#include <stdlib.h>

#include "mpi.h"

int cli_mpi_launched(void) {
    /* OpenMPI's mpirun, PMIx (srun --mpi=pmix, mpirun), MPICH's hydra and PMI-1/2 */
    return getenv("OMPI_COMM_WORLD_SIZE") || getenv("PMIX_RANK") || getenv("PMI_SIZE");
}

#ifdef IMCAP_HAVE_MPI
#include <limits.h>
#include <mpi.h>

/* MPI counts are ints: longer buffers go in pieces */
enum { PIECE = INT_MAX / 2 };

static int mpi_send(void *ctx, int to, const void *buf, size_t bytes) {
    (void)ctx;
    for (size_t o = 0; o < bytes || bytes == 0; o += PIECE) {
        int n = bytes - o < PIECE ? (int)(bytes - o) : PIECE;
        if (MPI_Send((const char *)buf + o, n, MPI_BYTE, to, 0, MPI_COMM_WORLD) != MPI_SUCCESS) return -1;
        if (bytes == 0) break;
    }
    return 0;
}

static int mpi_recv(void *ctx, int from, void *buf, size_t bytes) {
    (void)ctx;
    for (size_t o = 0; o < bytes || bytes == 0; o += PIECE) {
        int n = bytes - o < PIECE ? (int)(bytes - o) : PIECE;
        if (MPI_Recv((char *)buf + o, n, MPI_BYTE, from, 0, MPI_COMM_WORLD, MPI_STATUS_IGNORE) != MPI_SUCCESS)
            return -1;
        if (bytes == 0) break;
    }
    return 0;
}

static int mpi_bcast(void *ctx, int root, void *buf, size_t bytes) {
    (void)ctx;
    for (size_t o = 0; o < bytes || bytes == 0; o += PIECE) {
        int n = bytes - o < PIECE ? (int)(bytes - o) : PIECE;
        if (MPI_Bcast((char *)buf + o, n, MPI_BYTE, root, MPI_COMM_WORLD) != MPI_SUCCESS) return -1;
        if (bytes == 0) break;
    }
    return 0;
}

int cli_mpi_start(int *argc, char ***argv, imcap_train_comm *comm) {
    *comm = (imcap_train_comm){0, 1, NULL, mpi_send, mpi_recv, mpi_bcast};
    if (!cli_mpi_launched()) return 0;
    int provided;
    /* only the main thread calls MPI; OpenMP threads never do */
    if (MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS) {
        fprintf(stderr, "imcap train: MPI could not be initialised\n");
        return -1;
    }
    MPI_Comm_rank(MPI_COMM_WORLD, &comm->rank);
    MPI_Comm_size(MPI_COMM_WORLD, &comm->size);
    return 0;
}

void cli_mpi_finish(const imcap_train_comm *comm, int failed) {
    if (!cli_mpi_launched()) return;
    /* a process that fails alone would leave the others blocked in the
     * next step's exchange: end them all, with this process's message
     * already on stderr */
    if (failed && comm->size > 1) MPI_Abort(MPI_COMM_WORLD, 1);
    MPI_Finalize();
}
#else
int cli_mpi_start(int *argc, char ***argv, imcap_train_comm *comm) {
    (void)argc, (void)argv;
    *comm = (imcap_train_comm){0, 1, NULL, NULL, NULL, NULL};
    if (!cli_mpi_launched()) return 0;
    fprintf(stderr, "imcap train: started by an MPI launcher, but this imcap was built without MPI "
                    "(install libopenmpi-dev and rebuild: meson setup -Dmpi=enabled)\n");
    return -1;
}

void cli_mpi_finish(const imcap_train_comm *comm, int failed) { (void)comm, (void)failed; }
#endif
