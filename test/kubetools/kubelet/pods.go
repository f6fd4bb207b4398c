package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/retry"
	"k8s.io/klog/v2"
	"k8s.io/utils/ptr"
)

type kubelet struct {
	cs       kubernetes.Interface
	nodeName string
	address  string
	root     string

	mu    sync.Mutex
	pods  map[string]*pod // by NAMESPACE/NAME
	execs map[*execProcess]struct{}
	store cache.Store
	queue chan string
}

// pod is a pod this kubelet runs: its spec as last seen and its
// containers' processes.
type pod struct {
	namespace, name string
	uid             types.UID
	spec            corev1.PodSpec
	dir             string
	containers      map[string]*container
}

func newKubelet(cs kubernetes.Interface, nodeName, address, root string) *kubelet {
	return &kubelet{
		cs: cs, nodeName: nodeName, address: address, root: root,
		pods:  map[string]*pod{},
		execs: map[*execProcess]struct{}{},
		queue: make(chan string, 1024),
	}
}

func (k *kubelet) podDir(namespace, name string) string {
	return filepath.Join(k.root, "pods", namespace, name)
}

func (k *kubelet) logPath(namespace, name, container string) string {
	return filepath.Join(k.root, "logs", namespace, name, container+".log")
}

// registerNode creates the Node (or takes over one of the same name) and
// reports it Ready at this address and port, which is where the API server
// sends the streaming requests of the pods bound to it.
func (k *kubelet) registerNode(ctx context.Context, port int, version string) error {
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{
		Name: k.nodeName,
		Labels: map[string]string{
			"kubernetes.io/hostname": k.nodeName,
			"kubernetes.io/os":       runtime.GOOS,
			"kubernetes.io/arch":     runtime.GOARCH,
		},
	}}
	if _, err := k.cs.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return err
	}
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		n, err := k.cs.CoreV1().Nodes().Get(ctx, k.nodeName, metav1.GetOptions{})
		if err != nil {
			return err
		}
		now := metav1.Now()
		cond := func(t corev1.NodeConditionType, s corev1.ConditionStatus, reason, msg string) corev1.NodeCondition {
			return corev1.NodeCondition{Type: t, Status: s, Reason: reason, Message: msg, LastHeartbeatTime: now, LastTransitionTime: now}
		}
		capacity := corev1.ResourceList{
			corev1.ResourceCPU:    resource.MustParse("2"),
			corev1.ResourceMemory: resource.MustParse("4Gi"),
			corev1.ResourcePods:   resource.MustParse("110"),
		}
		n.Status = corev1.NodeStatus{
			Capacity:    capacity,
			Allocatable: capacity,
			Phase:       corev1.NodeRunning,
			Conditions: []corev1.NodeCondition{
				cond(corev1.NodeReady, corev1.ConditionTrue, "KubeletReady", "test kubelet is serving"),
				cond(corev1.NodeMemoryPressure, corev1.ConditionFalse, "KubeletHasSufficientMemory", ""),
				cond(corev1.NodeDiskPressure, corev1.ConditionFalse, "KubeletHasNoDiskPressure", ""),
				cond(corev1.NodePIDPressure, corev1.ConditionFalse, "KubeletHasSufficientPID", ""),
			},
			Addresses: []corev1.NodeAddress{
				{Type: corev1.NodeInternalIP, Address: k.address},
				{Type: corev1.NodeHostName, Address: k.nodeName},
			},
			DaemonEndpoints: corev1.NodeDaemonEndpoints{KubeletEndpoint: corev1.DaemonEndpoint{Port: int32(port)}},
			NodeInfo: corev1.NodeSystemInfo{
				KubeletVersion:          version,
				OperatingSystem:         runtime.GOOS,
				Architecture:            runtime.GOARCH,
				ContainerRuntimeVersion: "auditledger-test://" + version,
				OSImage:                 "host processes (test kubelet)",
			},
		}
		_, err = k.cs.CoreV1().Nodes().UpdateStatus(ctx, n, metav1.UpdateOptions{})
		return err
	})
}

// watchPods follows the pods bound to this node and syncs each change, one
// at a time.
func (k *kubelet) watchPods(ctx context.Context) {
	lw := cache.NewFilteredListWatchFromClient(k.cs.CoreV1().RESTClient(), "pods", metav1.NamespaceAll, func(o *metav1.ListOptions) {
		o.FieldSelector = fields.OneTermEqualSelector("spec.nodeName", k.nodeName).String()
	})
	inf := cache.NewSharedIndexInformer(lw, &corev1.Pod{}, 0, cache.Indexers{})
	enqueue := func(obj any) {
		if key, err := cache.DeletionHandlingMetaNamespaceKeyFunc(obj); err == nil {
			k.queue <- key
		}
	}
	inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    enqueue,
		UpdateFunc: func(_, obj any) { enqueue(obj) },
		DeleteFunc: enqueue,
	})
	k.mu.Lock()
	k.store = inf.GetStore()
	k.mu.Unlock()
	go inf.Run(ctx.Done())
	for {
		select {
		case <-ctx.Done():
			return
		case key := <-k.queue:
			if err := k.sync(ctx, key); err != nil {
				klog.Errorf("kubelet: sync pod %s: %v", key, err)
			}
		}
	}
}

func (k *kubelet) sync(ctx context.Context, key string) error {
	obj, exists, err := k.store.GetByKey(key)
	if err != nil {
		return err
	}
	if !exists {
		k.stopPod(key)
		return nil
	}
	p := obj.(*corev1.Pod)
	if p.DeletionTimestamp != nil {
		// What a kubelet does once the containers are stopped: remove the
		// pod for good, so that a deletion does not hang.
		k.stopPod(key)
		err := k.cs.CoreV1().Pods(p.Namespace).Delete(ctx, p.Name, metav1.DeleteOptions{
			GracePeriodSeconds: ptr.To[int64](0),
			Preconditions:      &metav1.Preconditions{UID: &p.UID},
		})
		if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
			return err
		}
		return nil
	}
	if err := k.startPod(p); err != nil {
		return err
	}
	if running(p) {
		return nil
	}
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		cur, err := k.cs.CoreV1().Pods(p.Namespace).Get(ctx, p.Name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if cur.UID != p.UID || running(cur) {
			return nil
		}
		cur.Status = k.runningStatus(cur)
		_, err = k.cs.CoreV1().Pods(p.Namespace).UpdateStatus(ctx, cur, metav1.UpdateOptions{})
		return err
	})
}

// running tells whether the pod's status is the one this kubelet reports.
func running(p *corev1.Pod) bool {
	return p.Status.Phase == corev1.PodRunning && len(p.Status.ContainerStatuses) == len(p.Spec.Containers)
}

func (k *kubelet) runningStatus(p *corev1.Pod) corev1.PodStatus {
	now := metav1.Now()
	cond := func(t corev1.PodConditionType) corev1.PodCondition {
		return corev1.PodCondition{Type: t, Status: corev1.ConditionTrue, LastTransitionTime: now}
	}
	st := corev1.PodStatus{
		Phase: corev1.PodRunning,
		Conditions: []corev1.PodCondition{
			cond(corev1.PodReadyToStartContainers), cond(corev1.PodInitialized),
			cond(corev1.PodReady), cond(corev1.ContainersReady), cond(corev1.PodScheduled),
		},
		HostIP:    k.address,
		HostIPs:   []corev1.HostIP{{IP: k.address}},
		PodIP:     k.address,
		PodIPs:    []corev1.PodIP{{IP: k.address}},
		StartTime: &now,
		QOSClass:  p.Status.QOSClass,
	}
	for _, c := range p.Spec.Containers {
		st.ContainerStatuses = append(st.ContainerStatuses, corev1.ContainerStatus{
			Name:        c.Name,
			Ready:       true,
			Started:     ptr.To(true),
			Image:       c.Image,
			ImageID:     "",
			ContainerID: fmt.Sprintf("auditledger://%s/%s/%s", p.Namespace, p.Name, c.Name),
			State:       corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: now}},
		})
	}
	return st
}

// startPod makes the pod's directory and log directory and starts the
// containers' main processes, once per pod.
func (k *kubelet) startPod(p *corev1.Pod) error {
	key := p.Namespace + "/" + p.Name
	k.mu.Lock()
	cur := k.pods[key]
	k.mu.Unlock()
	if cur != nil && cur.uid == p.UID {
		return nil
	}
	if cur != nil {
		k.stopPod(key) // a new pod of the same name
	}
	if err := validName(p.Namespace); err != nil {
		return err
	}
	if err := validName(p.Name); err != nil {
		return err
	}
	np := &pod{
		namespace: p.Namespace, name: p.Name, uid: p.UID, spec: *p.Spec.DeepCopy(),
		dir:        k.podDir(p.Namespace, p.Name),
		containers: map[string]*container{},
	}
	if err := os.MkdirAll(np.dir, 0o700); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(k.logPath(p.Namespace, p.Name, "x")), 0o700); err != nil {
		return err
	}
	for _, spec := range p.Spec.Containers {
		if err := validName(spec.Name); err != nil {
			return err
		}
		c, err := startContainer(np, spec, k.logPath(p.Namespace, p.Name, spec.Name))
		if err != nil {
			for _, c := range np.containers {
				c.stop()
			}
			return fmt.Errorf("container %s: %v", spec.Name, err)
		}
		np.containers[spec.Name] = c
	}
	k.mu.Lock()
	k.pods[key] = np
	k.mu.Unlock()
	klog.Infof("kubelet: pod %s started in %s", key, np.dir)
	return nil
}

func (k *kubelet) stopPod(key string) {
	k.mu.Lock()
	p := k.pods[key]
	delete(k.pods, key)
	k.mu.Unlock()
	if p == nil {
		return
	}
	for _, c := range p.containers {
		c.stop()
	}
}

// lookup finds a running pod and, when container is not empty, one of its
// containers; uid, when not empty, must be the pod's.
func (k *kubelet) lookup(namespace, name, uid, container string) (*pod, *container, error) {
	for _, s := range []string{namespace, name} {
		if err := validName(s); err != nil {
			return nil, nil, err
		}
	}
	k.mu.Lock()
	p := k.pods[namespace+"/"+name]
	k.mu.Unlock()
	if p == nil || (uid != "" && string(p.uid) != uid) {
		return nil, nil, fmt.Errorf("pod %s/%s is not running on node %s", namespace, name, k.nodeName)
	}
	if container == "" {
		return p, nil, nil
	}
	c := p.containers[container]
	if c == nil {
		return nil, nil, fmt.Errorf("container %s is not in pod %s/%s", container, namespace, name)
	}
	return p, c, nil
}

// shutdown stops every container and exec process (the kubelet is going
// away; its processes should not outlive it).
func (k *kubelet) shutdown() {
	k.mu.Lock()
	var keys []string
	for key := range k.pods {
		keys = append(keys, key)
	}
	execs := k.execs
	k.execs = map[*execProcess]struct{}{}
	k.mu.Unlock()
	for _, key := range keys {
		k.stopPod(key)
	}
	for e := range execs {
		e.kill()
	}
	deadline := time.Now().Add(2 * time.Second)
	for e := range execs {
		select {
		case <-e.done:
		case <-time.After(time.Until(deadline)):
		}
	}
}

// validName accepts a DNS label or subdomain, as namespaces, pod and
// container names are; anything else (a path separator, "..") is refused
// before it is used as a path component.
func validName(s string) error {
	if s == "" || len(s) > 253 {
		return fmt.Errorf("invalid name %q", s)
	}
	for i, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
		case (r == '-' || r == '.') && i > 0 && i < len(s)-1:
		default:
			return fmt.Errorf("invalid name %q", s)
		}
	}
	if s == "." || s == ".." {
		return fmt.Errorf("invalid name %q", s)
	}
	return nil
}
