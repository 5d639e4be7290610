/* Entry of both blobs: offset 0 of the blob. rdi = args (victim address).
 * Align the stack for the C++ ABI, call blob_main, then trap so ckpt (the
 * tracer) sees the blob has finished. */
	.section .text.entry, "ax"
	.globl __blob_entry
	.type __blob_entry, @function
__blob_entry:
	andq $-16, %rsp
	call blob_main
1:	int3
	jmp 1b

/* long blob_clone_thread(struct clone_args *args, size_t size,
 *                        void (*fn)(void *), void *arg)
 * clone3(2) for a new thread of this process: in the parent returns the
 * tid (or -errno); the child runs on the stack from args and calls fn(arg),
 * which must never return. r12/r13 carry fn/arg across the syscall. */
	.text
	.globl blob_clone_thread
	.type blob_clone_thread, @function
blob_clone_thread:
	pushq %r12
	pushq %r13
	movq %rdx, %r12
	movq %rcx, %r13
	movl $435, %eax
	syscall
	testq %rax, %rax
	jz 2f
	popq %r13
	popq %r12
	ret
2:	xorq %rbp, %rbp
	andq $-16, %rsp
	movq %r13, %rdi
	call *%r12
	ud2
	.section .note.GNU-stack, "", @progbits
