/** Real captures the slim and digest tests share. */
export const REAL_POD = "real/kind-v1.36.2/core.v1.Pod.json";
export const REAL_NODE = "real/minikube-v1.15.2-2019/core.v1.Node.json";
