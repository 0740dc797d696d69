//! The klog partition log (work in progress: see issue 2).
