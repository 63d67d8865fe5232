/**
 * `@hmmkit/svm`: the SVM driver framework (drm_gpusvm-like): fault-around (granule) policies,
 * notifier granularity policies, range attributes, and (with @hmmkit/hmm) the GpuSvm fault flow.
 *
 * @module
 */

export * from './atomic.ts';
export * from './attr-map.ts';
export * from './attrs.ts';
export * from './eviction.ts';
export * from './exclusive.ts';
export * from './gpusvm.ts';
export * from './granule.ts';
export * from './notifier-policy.ts';
export * from './oracle.ts';
export * from './page-mask.ts';
export * from './pat.ts';
export * from './thrashing.ts';
export * from './uvmsmart.ts';
export * from './vm.ts';
export * from './world.ts';
