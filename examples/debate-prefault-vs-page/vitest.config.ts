import { hmmkitProject } from '../../vitest.shared.ts';

export default hmmkitProject('@hmmkit/example-debate-prefault-vs-page');
