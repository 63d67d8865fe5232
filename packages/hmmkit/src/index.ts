/**
 * `hmmkit`: the whole public API in one package. The simulation core, the interval tree, MMU
 * notifiers, the simulated Linux mm, hmm, the fake GPU, the SVM driver framework, the workload
 * generators and the lab (experiments, sweeps, reports). Start with `createSvmWorld`,
 * `runKernel` and `worldVerdict` (docs/tutorial-first-driver.md).
 *
 * @module
 */

export * from '@hmmkit/bench';
export * as bench from '@hmmkit/bench';
export * from '@hmmkit/gpu';
export * as gpu from '@hmmkit/gpu';
export * from '@hmmkit/hmm';
export * as hmm from '@hmmkit/hmm';
export * from '@hmmkit/interval-tree';
export * as intervalTree from '@hmmkit/interval-tree';
export * from '@hmmkit/mm';
export * as mm from '@hmmkit/mm';
// Names two packages both export: the flat name is the CPU mm's; the others are reachable
// through the package namespaces below (e.g. `gpu.PageTable`, the GPU's page table).
export { alignDown, PAGE_SIZE, PageTable } from '@hmmkit/mm';
export * from '@hmmkit/notifier';
export * as notifier from '@hmmkit/notifier';
export * from '@hmmkit/sim';
export * as sim from '@hmmkit/sim';
export * from '@hmmkit/svm';
export * as svm from '@hmmkit/svm';
export * from '@hmmkit/workloads';
export * as workloads from '@hmmkit/workloads';
