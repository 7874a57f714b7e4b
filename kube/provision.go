package kube

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/runai-ldap-sync/runai-ldap-sync/sync/model"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
)

// CreateNamespace creates a namespace with labels. It never deletes or
// changes one: an existing namespace is an error (IsAlreadyExists).
func (c *Client) CreateNamespace(ctx context.Context, name string, labels map[string]string) error {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}}
	if _, err := c.cs.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{FieldManager: model.FieldManager}); err != nil {
		return fmt.Errorf("create namespace %s: %w", name, err)
	}
	return nil
}

// LabelNamespace adds labels to a namespace, with resourceVersion as the
// precondition: if anyone changed the namespace since it was read (it may
// have been labelled for another project meanwhile), the write is refused
// with a Conflict and nothing changes.
func (c *Client) LabelNamespace(ctx context.Context, name, resourceVersion string, labels map[string]string) error {
	patch := map[string]any{"metadata": map[string]any{"resourceVersion": resourceVersion, "labels": labels}}
	body, err := json.Marshal(patch)
	if err != nil {
		return fmt.Errorf("encode namespace patch: %w", err)
	}
	if _, err := c.cs.CoreV1().Namespaces().Patch(ctx, name, types.MergePatchType, body, metav1.PatchOptions{FieldManager: model.FieldManager}); err != nil {
		return fmt.Errorf("label namespace %s: %w", name, err)
	}
	return nil
}

// ListObjects lists, in every namespace and page by page, the objects of
// one resource that carry the label selector.
func (c *Client) ListObjects(ctx context.Context, gvr schema.GroupVersionResource, selector string) ([]unstructured.Unstructured, error) {
	var out []unstructured.Unstructured
	err := eachPage(metav1.ListOptions{LabelSelector: selector}, func(opts metav1.ListOptions) (string, error) {
		list, err := c.dyn.Resource(gvr).Namespace(metav1.NamespaceAll).List(ctx, opts)
		if err != nil {
			return "", fmt.Errorf("list %s labelled %s: %w", gvr.Resource, selector, err)
		}
		out = append(out, list.Items...)
		return list.GetContinue(), nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// GetObject reads one namespaced object; nil if it does not exist.
func (c *Client) GetObject(ctx context.Context, gvr schema.GroupVersionResource, namespace, name string) (*unstructured.Unstructured, error) {
	u, err := c.dyn.Resource(gvr).Namespace(namespace).Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("get %s %s/%s: %w", gvr.Resource, namespace, name, err)
	}
	return u, nil
}

// ApplyObject server-side applies obj with our field manager, forcing
// ownership of the fields it sets: a hand change to one of them is taken
// back, fields others set are left alone, and nothing is ever deleted.
func (c *Client) ApplyObject(ctx context.Context, gvr schema.GroupVersionResource, obj *unstructured.Unstructured) (*unstructured.Unstructured, error) {
	u, err := c.dyn.Resource(gvr).Namespace(obj.GetNamespace()).Apply(ctx, obj.GetName(), obj,
		metav1.ApplyOptions{FieldManager: model.FieldManager, Force: true})
	if err != nil {
		return nil, fmt.Errorf("apply %s %s/%s: %w", gvr.Resource, obj.GetNamespace(), obj.GetName(), err)
	}
	return u, nil
}
