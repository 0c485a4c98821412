"""String formats: what a spec string becomes (a Kubernetes name, label, path, image) decides
what it may contain.

Every string field that ends up in a Kubernetes object name, a label or annotation, a file path
or an image reference is one of these types, so `tftj validate`, the webhook and the CRD refuse
what the apiserver (or Kueue, or the kubelet) would refuse later, when a Job or pod is created
and the user is no longer watching. Each pattern has words (FORMAT_WORDS) that error messages
use instead of the regular expression. Patterns use only syntax that Python, pydantic-core's
regex engine and Go's RE2 (the apiserver's) read the same way.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import StringConstraints

_DNS_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_DNS_SUBDOMAIN = rf"{_DNS_LABEL}(\.{_DNS_LABEL})*"
# A label value's shape; the length (<= 63) is bounded by {0,61} so the pattern alone says it.
_LABEL_NAME = r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?"
_PATH_SEGMENT = r"[A-Za-z0-9_-][A-Za-z0-9_.-]*"  # no leading '.': excludes '.', '..', hidden

DNS_SUBDOMAIN_PATTERN = rf"^{_DNS_SUBDOMAIN}$"
# The same language as a DNS subdomain (length bounded by maxLength 63); its own spelling so
# that an error message can say what it is for.
QUEUE_NAME_PATTERN = rf"^({_DNS_LABEL})(\.{_DNS_LABEL})*$"
LABEL_VALUE_PATTERN = rf"^({_LABEL_NAME})?$"
QUALIFIED_NAME_PATTERN = rf"^({_DNS_SUBDOMAIN}/)?{_LABEL_NAME}$"
RESOURCE_NAME_PATTERN = (
    rf"^(cpu|memory|ephemeral-storage|hugepages-[0-9]+[KMGTPE]i?|{_DNS_SUBDOMAIN}/{_LABEL_NAME})$"
)
RELATIVE_PATH_PATTERN = rf"^{_PATH_SEGMENT}(/{_PATH_SEGMENT})*$"
ABSOLUTE_PATH_PATTERN = rf"^(/{_PATH_SEGMENT})+$"
# distribution/reference's grammar: [registry[:port]/]path[:tag][@digest], path lower-case.
_REGISTRY = (
    r"[A-Za-z0-9]([-A-Za-z0-9]*[A-Za-z0-9])?(\.[A-Za-z0-9]([-A-Za-z0-9]*[A-Za-z0-9])?)*(:[0-9]+)?"
)
_IMAGE_PATH = r"[a-z0-9]+(([._]|__|-+)[a-z0-9]+)*"
IMAGE_PATTERN = (
    rf"^({_REGISTRY}/)?{_IMAGE_PATH}(/{_IMAGE_PATH})*(:[A-Za-z0-9_][A-Za-z0-9_.-]{{0,127}})?"
    r"(@[a-z0-9]+([+._-][a-z0-9]+)*:[a-fA-F0-9]{32,})?$"
)
# Text that reaches a file system or a log line: no control characters (NUL, newline, ...).
PRINTABLE_PATTERN = r"^[^\x00-\x1f\x7f]*$"

DNS_SUBDOMAIN_MAX = 253
LABEL_VALUE_MAX = 63
QUALIFIED_NAME_MAX = DNS_SUBDOMAIN_MAX + 1 + LABEL_VALUE_MAX

DnsSubdomain = Annotated[
    str,
    StringConstraints(min_length=1, max_length=DNS_SUBDOMAIN_MAX, pattern=DNS_SUBDOMAIN_PATTERN),
]
# Kueue carries the queue in a label and requires a LocalQueue name: both at once.
QueueName = Annotated[
    str,
    StringConstraints(min_length=1, max_length=LABEL_VALUE_MAX, pattern=QUEUE_NAME_PATTERN),
]
LabelValue = Annotated[
    str, StringConstraints(max_length=LABEL_VALUE_MAX, pattern=LABEL_VALUE_PATTERN)
]
QualifiedName = Annotated[
    str,
    StringConstraints(min_length=1, max_length=QUALIFIED_NAME_MAX, pattern=QUALIFIED_NAME_PATTERN),
]
ResourceName = Annotated[
    str,
    StringConstraints(min_length=1, max_length=QUALIFIED_NAME_MAX, pattern=RESOURCE_NAME_PATTERN),
]
Image = Annotated[str, StringConstraints(min_length=1, max_length=1024, pattern=IMAGE_PATTERN)]
RelativePath = Annotated[
    str, StringConstraints(min_length=1, max_length=1024, pattern=RELATIVE_PATH_PATTERN)
]
AbsolutePath = Annotated[str, StringConstraints(max_length=1024, pattern=ABSOLUTE_PATH_PATTERN)]
PrintableText = Annotated[str, StringConstraints(max_length=4096, pattern=PRINTABLE_PATTERN)]

# What each pattern means, for error messages ("must be ..., got 'x'") and the CRD's CEL rules.
FORMAT_WORDS: dict[str, str] = {
    DNS_SUBDOMAIN_PATTERN: "a DNS-1123 subdomain (lower-case letters, digits, '-' and '.', "
    "starting and ending with a letter or digit)",
    QUEUE_NAME_PATTERN: "a Kueue LocalQueue name that fits a label value (lower-case letters, "
    "digits, '-' and '.', starting and ending with a letter or digit, at most 63 characters)",
    LABEL_VALUE_PATTERN: "a Kubernetes label value (at most 63 letters, digits, '-', '_' and "
    "'.', starting and ending with a letter or digit)",
    QUALIFIED_NAME_PATTERN: "a Kubernetes label or annotation key ([DNS-subdomain prefix/]name, "
    "the name at most 63 letters, digits, '-', '_' and '.', starting and ending with a letter "
    "or digit)",
    RESOURCE_NAME_PATTERN: "a Kubernetes resource name (cpu, memory, ephemeral-storage, "
    "hugepages-<size>, or a qualified name such as example.com/device)",
    RELATIVE_PATH_PATTERN: "a relative path of letters, digits, '_', '-' and '.' separated by "
    "'/' (no segment starting with '.', so no '..', no leading or trailing '/')",
    ABSOLUTE_PATH_PATTERN: "an absolute path of letters, digits, '_', '-' and '.' separated by "
    "'/' (no segment starting with '.', not '/' itself, no trailing '/')",
    IMAGE_PATTERN: "a container image reference ([registry[:port]/]repository[:tag][@digest], "
    "the repository in lower case)",
    PRINTABLE_PATTERN: "text without control characters (no newline, tab or NUL)",
}
