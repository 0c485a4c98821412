// The sandbox ("pause") container of the real node: registry.k8s.io/pause cannot be
// pulled here, so testbin/images.sh builds this into a FROM-scratch image.
module tftj.dev/testbin/pause

go 1.26.0
