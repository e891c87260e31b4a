/** The TypeScript reference forward pass (the tests' oracle). */
export { ReferenceModel, ReferenceSession, argmax, type ReferenceConfig, type StepResult } from './forward.js';
