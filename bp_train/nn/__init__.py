"""The lesson: a neural network written from scratch in NumPy, trained by backpropagation.

It follows Koki Saito's *Deep Learning from Scratch* (O'Reilly Japan, 2016), chapters 5 (backpropagation
on a computational graph), 6 (optimizers, initial weights, BatchNorm, dropout) and 7 (convolution and
pooling), and the notes of Stanford's cs231n for the graph of f = x + y * z and its gates.

Everything in this folder is the lesson and nothing else; none of it imports anything of the tool around
it (the command line, configs, data files), so it can be read, and used, on its own. Read it in this order:

 1. layers.py         the computational graph: the Mul, Add, Max and Copy gates, each with forward and
                      backward; then the layers of a digit recognizer built the same way: Affine, the
                      activations (ReLU, Sigmoid, Tanh) and SoftmaxWithLoss; then Dropout and BatchNorm
 2. simple_network.py the textbook's network: those layers in a row, predict, loss, gradient (backprop)
                      and numerical_gradient, in one sitting
 3. losses.py         the output and its loss taken apart: Softmax then CrossEntropy, Sigmoid with squared error
 4. gradient.py       numerical differentiation, the slow and obvious check of every gradient above
 5. optimizers.py     what to do with a gradient: SGD, Momentum, Nesterov, AdaGrad, RMSprop, Adam, and
                      learning-rate schedules
 6. conv.py           convolution as one matrix product (im2col, col2im), max pooling -- the textbook's
                      arg-max version and the fast one -- and the reshapes between images and vectors
 7. network.py        the same idea as simple_network.py with every layer above: CNN blocks, BatchNorm,
                      dropout, three losses, any device; what the training loop builds from a config
 8. fast_layers.py    the layers network.py runs: the lesson's, made fast and device-aware, checked equal
 9. vectors.py        all parameters as views of one vector, so that an optimizer steps once
10. backend.py        where the arrays live: NumPy on the CPU, CuPy on an NVIDIA GPU
    errors.py         the one error the lesson raises

A first network, by hand:

    import numpy as np
    from bp_train.nn.optimizers import SGD
    from bp_train.nn.simple_network import SimpleNetwork

    net = SimpleNetwork(input_size=784, hidden_sizes=[50], output_size=10)   # float64, seed 0
    x, t = np.random.default_rng(0).random((3, 784)), np.array([3, 1, 4])
    grads = net.gradient(x, t)                  # forward, then backward: {"W1": dL/dW1, "b1": ..., "W2", "b2"}
    check = net.numerical_gradient(x, t)        # central differences: 80,000 forward passes, a few seconds
    print(max(abs(grads[k] - check[k]).max() for k in grads))   # about 1e-10: backprop is right
    SGD(lr=0.1).update(net.params, grads)       # one step downhill
"""
