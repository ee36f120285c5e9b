/* mpi.h — the CLI's MPI glue for data-parallel `imcap train` (the library
 * knows no transport: it gets an imcap_train_comm). Without MPI support
 * compiled in, cli_mpi_start fails when the process was started by an MPI
 * launcher and is a no-op otherwise. */
#ifndef IMCAP_CLI_MPI_H
#define IMCAP_CLI_MPI_H
#include "imcap.h"

/* Whether an MPI launcher (mpirun, srun) started this process. */
int cli_mpi_launched(void);
/* Initialises MPI when launched by one and fills *comm (rank, size and the
 * three operations). Returns 0 (comm->size is 1 without a launcher), or
 * -1 after printing why. */
int cli_mpi_start(int *argc, char ***argv, imcap_train_comm *comm);
/* The end of a run: a clean finish, or, after a failure in any process, the
 * whole job ended at once (the others may be waiting for this one). */
void cli_mpi_finish(const imcap_train_comm *comm, int failed);
#endif
