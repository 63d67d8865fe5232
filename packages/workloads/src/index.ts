/**
 * `@hmmkit/workloads`: what GPU kernels and CPU threads do. Seeded access-pattern generators
 * (streaming, strided, stencil, GEMM, ATAX, wavefront, CSR BFS, random, kmeans) producing
 * warp-major typed-array streams for `@hmmkit/gpu`'s engine, CPU-side activity descriptors,
 * a streaming binary trace format, the UVMSmart page-access dump importer, and statistics.
 *
 * @module
 */
export * from './access.ts';
export * from './cpu.ts';
export * from './generators.ts';
export * from './kernel.ts';
export * from './primitives.ts';
export * from './stats.ts';
export * from './trace.ts';
export * from './uvmsmart.ts';
