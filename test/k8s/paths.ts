// Moved to test-kit/k8s/ (shared with bench/, which runs pgim in Kubernetes mode for B3k); re-exported for the tests.
export * from '../../test-kit/k8s/paths.js';
