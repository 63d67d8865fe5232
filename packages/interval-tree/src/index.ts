/**
 * `@hmmkit/interval-tree`: the kernel's augmented interval tree (`lib/interval_tree.c`) over
 * inclusive integer intervals `[start, last]`, the index behind MMU interval notifiers.
 *
 * @module
 */
export { IntervalTree, IntervalTreeNode, type OverlapVisitor } from './interval-tree.ts';
